"""cryptocloud-manage: operator tasks that need no running service.

    cryptocloud-manage master-key create PATH
    cryptocloud-manage group-secret create PATH
    cryptocloud-manage credential create --file FILE --project PROJECT
    cryptocloud-manage credential list --file FILE
    cryptocloud-manage credential revoke --file FILE ID
    cryptocloud-manage images build [--push] [--kind KIND] [--no-record]
    cryptocloud-manage images list
"""

import json
import sys

from oslo_config import cfg
from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.common import secretfile
from cryptocloud.common import service
from cryptocloud.conf import CONF


def _create_secret(what: str) -> int:
    secretfile.create_secret_file(CONF.command.path,
                                  overwrite=CONF.command.force)
    print('Wrote a new %s to %s (mode 0600).' % (what, CONF.command.path))
    return 0


def do_master_key_create() -> int:
    """The operator master key that seals every vHSM group's domain key."""
    return _create_secret('master key')


def do_group_secret_create() -> int:
    """The secret with which service instances authenticate to vHSMs."""
    return _create_secret('vHSM group secret')


def do_credential_create() -> int:
    from cryptocloud.cryptoservice import auth
    token = auth.create_credential(CONF.command.file, CONF.command.project)
    print('Created a service credential for project %s. It is shown only '
          'this once; keep it secret:' % CONF.command.project,
          file=sys.stderr)
    print(token)
    return 0


def do_credential_list() -> int:
    from cryptocloud.cryptoservice import auth
    print(json.dumps(auth.list_credentials(CONF.command.file), indent=2))
    return 0


def do_credential_revoke() -> int:
    from cryptocloud.cryptoservice import auth
    auth.revoke_credential(CONF.command.file, CONF.command.id)
    print('Revoked credential %s.' % CONF.command.id)
    return 0


def do_images_build() -> int:
    """Build (and push, and record) the images; print what was made."""
    from cryptocloud.images import build
    from cryptocloud.images import catalog

    kinds = tuple(CONF.command.kind or catalog.KINDS)
    results = build.ImageBuilder(CONF).build_and_push(
        kinds=kinds, push=CONF.command.push)
    if CONF.command.push and CONF.command.record:
        conn = _control_db()
        for result in results:
            result['image_id'] = catalog.record(conn, result)['id']
    print(json.dumps(results, indent=2, sort_keys=True, default=str))
    return 0


def do_images_list() -> int:
    """Print the images recorded in the control database."""
    from cryptocloud.images import catalog

    conn = _control_db()
    rows = conn.list('images', sort_dir='desc')
    print(json.dumps([catalog.view(r) for r in rows], indent=2,
                     sort_keys=True, default=str))
    return 0


def _control_db():
    from cryptocloud.db import api as dbapi

    return dbapi.Connection(CONF.database.connection)


def add_command_parsers(subparsers):
    """Declare the sub-commands (called by oslo.config)."""
    for name, func, what in (
            ('master-key', do_master_key_create, 'master key'),
            ('group-secret', do_group_secret_create, 'vHSM group secret')):
        parser = subparsers.add_parser(name, help='Manage the %s.' % what)
        actions = parser.add_subparsers(dest='action', required=True)
        create = actions.add_parser('create', help='Write a new %s.' % what)
        create.add_argument('path', help='File to write (mode 0600).')
        create.add_argument('--force', action='store_true',
                            help='Overwrite an existing file. Everything '
                                 'sealed with the old one becomes '
                                 'unreadable.')
        create.set_defaults(func=func)

    parser = subparsers.add_parser(
        'credential', help='Manage tenant service credentials.')
    actions = parser.add_subparsers(dest='action', required=True)
    create = actions.add_parser('create', help='Create a credential and '
                                'print it once.')
    create.add_argument('--file', required=True,
                        help='Credentials file of the service instance.')
    create.add_argument('--project', required=True,
                        help='Project the credential acts for.')
    create.set_defaults(func=do_credential_create)
    listing = actions.add_parser('list', help='List credentials (ids and '
                                 'projects, never secrets).')
    listing.add_argument('--file', required=True)
    listing.set_defaults(func=do_credential_list)
    revoke = actions.add_parser('revoke', help='Revoke a credential.')
    revoke.add_argument('--file', required=True)
    revoke.add_argument('id', help='Credential id.')
    revoke.set_defaults(func=do_credential_revoke)

    parser = subparsers.add_parser(
        'images', help='Build, push and list the vHSM and crypto-service '
                       'images (run on the master node).')
    actions = parser.add_subparsers(dest='action', required=True)
    build = actions.add_parser(
        'build', help='Build the images from this source tree ([images] '
                      'options) and, with --push, push them to the '
                      'registry ([registry]) and record their digests.')
    build.add_argument('--push', action='store_true',
                       help='Push to the registry after building.')
    build.add_argument('--kind', action='append',
                       choices=['vhsm', 'cryptoservice'],
                       help='Build only this image (repeatable); both by '
                            'default.')
    build.add_argument('--no-record', dest='record', action='store_false',
                       help='Do not record the pushed images in the '
                            'control database ([database] connection).')
    build.set_defaults(func=do_images_build)
    listing = actions.add_parser('list', help='List the recorded images.')
    listing.set_defaults(func=do_images_list)


command_opt = cfg.SubCommandOpt('command', title='Commands',
                                handler=add_command_parsers,
                                help='Available commands')


def main(argv: list[str] | None = None) -> int:
    CONF.register_cli_opt(command_opt)
    # stdout is for what a command prints (a token, JSON) and may be
    # captured by a script; oslo.log would write its lines there too.
    logging.register_options(CONF)
    CONF.set_default('use_stderr', True)
    service.prepare_service(argv, prog='cryptocloud-manage',
                            default_config_files=[])
    try:
        return CONF.command.func()
    except exception.CryptoCloudException as exc:
        print('cryptocloud-manage: %s' % exc, file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
