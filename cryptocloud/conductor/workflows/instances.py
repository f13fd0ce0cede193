"""The instances of a service: converge them, keep their associations
with the group's vHSMs current, and publish the service endpoint."""

from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.conductor import proxy
from cryptocloud.conductor.workflows import base
from cryptocloud.conductor.workflows import replicas
from cryptocloud.conductor.workflows import workloads
from cryptocloud.conf import CONF

LOG = logging.getLogger(__name__)


def credentials(db, service_id: str) -> list[dict]:
    """The service's credentials as compute gets them: hashes only."""
    return [{'id': c['id'], 'project_id': c['project_id'],
             'secret_sha256': c['secret_sha256']}
            for c in db.list('service_credentials',
                             filters={'service_id': service_id})]



def write_associations(db, instance_id: str, vhsm_ids: list[str]) -> bool:
    """Make the instance's association rows exactly ``vhsm_ids``.

    Returns whether anything changed.
    """
    current = {a['vhsm_id']: a['id'] for a in db.list(
        'associations', filters={'instance_id': instance_id})}
    wanted = set(vhsm_ids)
    for vhsm_id in sorted(wanted - set(current)):
        try:
            db.create('associations', {'vhsm_id': vhsm_id,
                                       'instance_id': instance_id})
        except exception.Conflict:
            pass  # written by a concurrent pass, or the vHSM just went
    extra = [aid for vid, aid in current.items() if vid not in wanted]
    if extra:
        db.delete_where('associations', {'id': extra})
    return wanted != set(current)


def sync_instance(wf: base.WorkflowContext, instance: dict,
                  vhsms: list[dict], creds: list[dict], *,
                  force: bool = False) -> None:
    """Point a running instance at ``vhsms`` (no restart), then record it.

    Only instances whose associations differ are told, unless ``force``
    (credentials changed); a failure leaves the instance ERROR for the
    reconciler to replace.
    """
    wanted = {v['id'] for v in vhsms}
    current = {a['vhsm_id'] for a in wf.db.list(
        'associations', filters={'instance_id': instance['id']})}
    if wanted == current and not force:
        return
    if instance['state'] == states.STANDBY:
        # A cold replica runs nothing to tell: prepare it again.
        replicas.refresh_standby(wf, wf.db.get('services',
                                               instance['service_id']),
                                 instance, vhsms, creds)
        return
    if instance['state'] not in workloads.LIVE:
        return
    node = wf.node(instance.get('node_id'))
    if instance.get('workload_ref') and node is not None:
        wf.check()
        try:
            status = wf.compute.update_instance(
                wf.ctxt, node['hostname'], instance['id'],
                workloads.endpoints(vhsms), creds)
        except Exception as exc:  # noqa: BLE001 - recorded on the row
            reason = 'update failed: %s' % base.reason_of(exc)
            LOG.warning('Instance %s: %s', instance['id'], reason)
            try:
                wf.db.transition('service_instances', instance['id'],
                                 workloads.W, 'fail',
                                 values={'status_reason': reason})
            except exception.InvalidState:
                pass
            return
        workloads.apply_status(wf.db, 'service_instances', instance, status)
    write_associations(wf.db, instance['id'], sorted(wanted))


def refresh_group_services(wf: base.WorkflowContext, group_id: str,
                           vhsms: list[dict]) -> None:
    """Tell every instance of the group's services about ``vhsms``."""
    for service in wf.db.list('services', filters={'group_id': group_id}):
        if service['state'] == states.DELETING:
            continue
        creds = credentials(wf.db, service['id'])
        for instance in wf.db.list('service_instances',
                                   filters={'service_id': service['id']}):
            sync_instance(wf, instance, vhsms, creds)


def wait_for_group(wf: base.WorkflowContext, group_id: str) -> dict:
    """Wait (within the deadline) until the service's group is ACTIVE."""
    found: dict = {}

    def ready() -> bool:
        try:
            group = wf.db.get('vhsm_groups', group_id)
        except exception.NotFound:
            raise base.WorkflowError(
                reason='vHSM group %s is gone' % group_id) from None
        if group['state'] in (states.ERROR, states.DELETING):
            raise base.WorkflowError(
                reason='vHSM group %s is %s: %s'
                       % (group_id, group['state'],
                          group.get('status_reason') or 'no reason given'))
        found['group'] = group
        return group['state'] == states.ACTIVE

    wf.wait_until(ready, 'vHSM group %s to become ACTIVE' % group_id)
    return found['group']


def endpoint_values(service: dict, active: list[dict]) -> dict:
    """The service columns to change so its endpoint is served; {}."""
    return _endpoint(service, active) if active else {}


def _endpoint(service: dict, active: list[dict]) -> dict:
    """Keep the endpoint while its instance is ACTIVE, else the first.

    With the proxy, the endpoint is the service's own frontend for good.
    """
    current = (service.get('endpoint_host'), service.get('endpoint_port'))
    fronted = proxy.endpoint_of(CONF, service)
    if fronted is not None:
        if (fronted['endpoint_host'], fronted['endpoint_port']) == current:
            return {}
        return fronted
    for inst in active:
        if (inst['host'], inst['port']) == current:
            return {}
    first = active[0]
    return {'endpoint_host': first['host'], 'endpoint_port': first['port']}


def converge_service(wf: base.WorkflowContext, service: dict) -> dict:
    """Instances to target, all associated; the endpoint values to set."""
    service_id, group_id = service['id'], service['group_id']
    if proxy.enabled(CONF):
        service = proxy.allocate_port(wf.db, CONF, service)
    wait_for_group(wf, group_id)

    def active_vhsms() -> list[dict]:
        return wf.db.list('vhsms', filters={'group_id': group_id,
                                            'state': states.ACTIVE})
    # An ACTIVE group may have no ACTIVE vHSM for a moment: its members
    # are being replaced (after a restart, the group's reconcile runs
    # beside this one).  Wait for one within the deadline.
    wf.wait_until(lambda: bool(active_vhsms()),
                  'an ACTIVE vHSM in group %s' % group_id)
    vhsms = active_vhsms()
    creds = credentials(wf.db, service_id)
    vhsm_ids = [v['id'] for v in vhsms]
    fleet = workloads.Fleet(
        table='service_instances', kind='instance', owner_field='service_id',
        owner_id=service_id, target=int(service['target_instances']),
        start=lambda row, host: wf.compute.start_instance(
            wf.ctxt, host, row['id'], service_id, group_id,
            workloads.endpoints(vhsms), creds, image=service.get('image_ref')),
        after_start=lambda row: write_associations(wf.db, row['id'],
                                                   vhsm_ids),
        extra_values={'role': replicas.PRIMARY},
        filters={'role': replicas.PRIMARY})
    # A failed primary with a replica is replaced by promoting it: the
    # replica is ready (or running) and may hold the same host and port.
    replicas.failover(wf, service, vhsms, creds)
    active = workloads.converge(wf, fleet)
    for inst in active:
        sync_instance(wf, inst, vhsms, creds)
    replicas.converge_replicas(wf, service, active, vhsms, creds)
    result = _endpoint(wf.db.get('services', service_id), active)
    # The endpoint handed out must answer once the service is ACTIVE.
    proxy.changed_and_wait()
    return result
