"""Policy rules of the admin API, in code (oslo.policy).

Operators override rules in ``policy.yaml`` ([oslo_policy] policy_file);
``tox -e genpolicy`` writes the sample ``etc/cryptocloud/policy.yaml.sample``
from :func:`list_rules`.

Three base rules: ``admin_api`` (the admin role), ``project_reader``
(role ``reader`` or ``member`` in the project that owns the target) and
``project_member`` (role ``member`` there).  Nodes and images are admin
only.  Groups, services, their workloads and tasks are read by the admin
and the owning project's readers, and changed by the admin and the
owning project's members.  Keystone's implied roles (admin -> manager ->
member -> reader) give an admin or member token the roles below it; a
token with only another role, such as ``service``, may do nothing here.
A caller who fails a rule on an existing resource of another project is
told it does not exist (404), not that it is forbidden.
"""

import threading

from oslo_config import cfg
from oslo_policy import policy

from cryptocloud.common import context as cc_context
from cryptocloud.common import exception

ADMIN_OR_READER = 'rule:admin_api or rule:project_reader'
ADMIN_OR_OWNER = 'rule:admin_api or rule:project_member'

_BASE = [
    policy.RuleDefault('admin_api', 'role:admin',
                       description='Operators of the cloud.'),
    # "member" too: http_basic users have no implied roles.
    policy.RuleDefault('project_reader',
                       '(role:reader or role:member) and '
                       'project_id:%(project_id)s',
                       description='A reader or member of the project '
                                   'that owns the target.'),
    policy.RuleDefault('project_member',
                       'role:member and project_id:%(project_id)s',
                       description='A member of the project that owns '
                                   'the target.'),
    policy.RuleDefault('admin_or_reader', ADMIN_OR_READER,
                       description='An operator, or a reader of the '
                                   'owning project (reads).'),
    policy.RuleDefault('admin_or_owner', ADMIN_OR_OWNER,
                       description='An operator, or a member of the '
                                   'owning project (writes).'),
]


def _op(name: str, check: str, description: str,
        operations: list[tuple[str, str]]) -> policy.DocumentedRuleDefault:
    return policy.DocumentedRuleDefault(
        name=name, check_str=check, description=description,
        operations=[{'method': m, 'path': p} for m, p in operations])


_OPERATIONS = [
    _op('cryptocloud:node:get', 'rule:admin_api', 'List and show nodes.',
        [('GET', '/v1/nodes'), ('GET', '/v1/nodes/{node_id}')]),
    _op('cryptocloud:node:update', 'rule:admin_api',
        'Enable or disable a node.', [('PATCH', '/v1/nodes/{node_id}')]),
    _op('cryptocloud:image:get', 'rule:admin_api',
        'List and show published images.',
        [('GET', '/v1/images'), ('GET', '/v1/images/{image_id}')]),
    _op('cryptocloud:image:build', 'rule:admin_api',
        'Build and push the vHSM and crypto-service images.',
        [('POST', '/v1/images')]),
    _op('cryptocloud:vhsm_group:get', 'rule:admin_or_reader',
        'List and show vHSM groups.',
        [('GET', '/v1/vhsm_groups'), ('GET', '/v1/vhsm_groups/{group_id}')]),
    _op('cryptocloud:vhsm_group:create', 'rule:admin_or_owner',
        'Create a vHSM group in the caller\'s project.',
        [('POST', '/v1/vhsm_groups')]),
    _op('cryptocloud:vhsm_group:update', 'rule:admin_or_owner',
        'Resize a vHSM group.', [('PATCH', '/v1/vhsm_groups/{group_id}')]),
    _op('cryptocloud:vhsm_group:delete', 'rule:admin_or_owner',
        'Delete a vHSM group.', [('DELETE', '/v1/vhsm_groups/{group_id}')]),
    _op('cryptocloud:service:get', 'rule:admin_or_reader',
        'List and show services.',
        [('GET', '/v1/services'), ('GET', '/v1/services/{service_id}')]),
    _op('cryptocloud:service:create', 'rule:admin_or_owner',
        'Create a service in the caller\'s project.',
        [('POST', '/v1/services')]),
    _op('cryptocloud:service:update', 'rule:admin_or_owner',
        'Resize a service.', [('PATCH', '/v1/services/{service_id}')]),
    _op('cryptocloud:service:delete', 'rule:admin_or_owner',
        'Delete a service.', [('DELETE', '/v1/services/{service_id}')]),
    _op('cryptocloud:service:credential:get', 'rule:admin_or_reader',
        'List a service\'s credential ids.',
        [('GET', '/v1/services/{service_id}/credentials')]),
    _op('cryptocloud:service:credential:create', 'rule:admin_or_owner',
        'Make a service credential (the token is shown once).',
        [('POST', '/v1/services/{service_id}/credentials')]),
    _op('cryptocloud:service:credential:delete', 'rule:admin_or_owner',
        'Revoke a service credential.',
        [('DELETE',
          '/v1/services/{service_id}/credentials/{credential_id}')]),
    _op('cryptocloud:service:scaling_policy:get', 'rule:admin_or_reader',
        'Show a service\'s scaling policy and the balancer\'s last '
        'decision.', [('GET', '/v1/services/{service_id}/scaling_policy')]),
    _op('cryptocloud:service:scaling_policy:set', 'rule:admin_or_owner',
        'Create or replace a service\'s scaling policy.',
        [('PUT', '/v1/services/{service_id}/scaling_policy')]),
    _op('cryptocloud:service:scaling_policy:delete', 'rule:admin_or_owner',
        'Delete a service\'s scaling policy.',
        [('DELETE', '/v1/services/{service_id}/scaling_policy')]),
    _op('cryptocloud:instance:get', 'rule:admin_or_reader',
        'List and show service instances.',
        [('GET', '/v1/instances'), ('GET', '/v1/instances/{instance_id}')]),
    _op('cryptocloud:vhsm:get', 'rule:admin_or_reader',
        'List and show vHSMs.',
        [('GET', '/v1/vhsms'), ('GET', '/v1/vhsms/{vhsm_id}')]),
    _op('cryptocloud:association:get', 'rule:admin_or_reader',
        'List and show associations between instances and vHSMs.',
        [('GET', '/v1/associations'),
         ('GET', '/v1/associations/{association_id}')]),
    _op('cryptocloud:task:get', 'rule:admin_or_reader',
        'List and show tasks.',
        [('GET', '/v1/tasks'), ('GET', '/v1/tasks/{task_id}')]),
]


def list_rules() -> list[policy.RuleDefault]:
    """Every default rule (the oslo.policy.policies entry point)."""
    return _BASE + _OPERATIONS


_ENFORCER: policy.Enforcer | None = None
_LOCK = threading.Lock()


def get_enforcer(conf: cfg.ConfigOpts | None = None) -> policy.Enforcer:
    """The process's enforcer, with the in-code defaults registered."""
    global _ENFORCER
    with _LOCK:
        if _ENFORCER is None:
            enforcer = policy.Enforcer(conf or cfg.CONF)
            enforcer.register_defaults(list_rules())
            _ENFORCER = enforcer
        return _ENFORCER


def reset() -> None:
    """Forget the enforcer (tests, and config reloads)."""
    global _ENFORCER
    with _LOCK:
        _ENFORCER = None


def check(rule: str, ctx: cc_context.RequestContext, target: dict) -> bool:
    """True when ``ctx`` passes ``rule`` on ``target``."""
    return get_enforcer().enforce(rule, target, ctx.to_policy_values(),
                                  do_raise=False)


def authorize(rule: str, ctx: cc_context.RequestContext,
              target: dict | None = None) -> None:
    """Raise Forbidden (403) unless ``ctx`` passes ``rule``.

    Without a target the caller's own project is the target: the check
    then asks "may this caller do this at all?".
    """
    if target is None:
        target = {'project_id': ctx.project_id}
    if not check(rule, ctx, target):
        raise exception.Forbidden(reason='policy does not allow %s' % rule)


def authorize_owner(rule: str, ctx: cc_context.RequestContext, row: dict,
                    kind: str, ident) -> None:
    """Raise NotFound unless ``ctx`` passes ``rule`` on ``row``.

    Rows of other projects are hidden rather than refused, so a caller
    cannot learn which ids exist elsewhere.
    """
    if not check(rule, ctx, {'project_id': row.get('project_id')}):
        raise exception.ResourceNotFound(kind=kind, id=ident)


def is_admin(ctx: cc_context.RequestContext) -> bool:
    """True when ``ctx`` passes ``admin_api`` (sees every project)."""
    return check('admin_api', ctx, {'project_id': ctx.project_id})
