"""Client side of the compute daemon's RPC API (topic ``cryptocloud-compute``).

The conductor calls one node at a time (``server=<host>``) to start, prepare,
activate, update, stop and list its workloads.  Every argument and result
is plain JSON data; nothing secret crosses the bus: vHSM group secrets are
derived on the node and service credentials travel as SHA-256 hashes only.
"""

import functools
import time

import oslo_messaging as messaging
from oslo_log import log as logging

from cryptocloud.common import context as cc_context
from cryptocloud.common import exception
from cryptocloud.common import rpc
from cryptocloud.conf import CONF

LOG = logging.getLogger(__name__)

# Shared by this client and ComputeManager (the server).
RPC_API_VERSION = '1.2'

# Seconds between two sends of a call no queue took (see _NodeCall).
UNROUTABLE_RETRY_INTERVAL = 0.5


class _NodeCall:
    """A client prepared for one node whose calls wait for its queue.

    Calls go out with the mandatory flag (``at_least_once``): when no
    queue is bound for the node, as in the seconds after a broker restart
    before its daemon has declared its queue again, the broker returns
    the message at once instead of dropping it, and the call is sent
    again (it never reached the node, so this is safe) until the node
    takes it or the call's timeout has passed.  Without it such a call
    waited out the whole ``rpc_timeout`` for a reply.
    """

    def __init__(self, cctxt, host: str, timeout: float) -> None:
        self._cctxt = cctxt
        self._host = host
        self._timeout = timeout

    def call(self, ctxt, method: str, **kwargs):
        """Call ``method`` on the node; its answer."""
        deadline = time.monotonic() + self._timeout
        sent_again = False
        while True:
            try:
                return self._cctxt.call(ctxt, method, **kwargs)
            except messaging.MessageUndeliverable:
                if not sent_again:
                    LOG.info('Compute node %s has no queue on the message '
                             'bus yet (its daemon is reconnecting?); '
                             'sending %s again.', self._host, method)
                sent_again = True
                if time.monotonic() >= deadline:
                    raise exception.ServiceUnavailable(
                        reason='compute node %s has no queue on the message '
                               'bus (its daemon is stopped or reconnecting)'
                               % self._host) from None
                time.sleep(UNROUTABLE_RETRY_INTERVAL)


class ComputeAPI:
    """Client side of the compute RPC API.

    API version history:

    | 1.0 - Initial version: start_vhsm, start_instance, update_instance,
    |       stop_workload, list_workloads (all calls).
    | 1.1 - start_vhsm and start_instance take ``image``, the registry
    |       reference pinned by digest that the workload runs from.
    | 1.2 - prepare_instance (a replica made ready to run, not running;
    |       optionally on its primary's port) and activate_workload (start
    |       a prepared workload and wait until it answers).  Workload
    |       statuses may say "prepared".
    """

    RPC_API_VERSION = RPC_API_VERSION

    def __init__(self, *, version_cap: str | None = None,
                 timeout: int | None = None) -> None:
        # ``version_cap`` pins what this client sends while compute nodes
        # of an older release are still running (rolling upgrade).
        self._version_cap = version_cap
        self._timeout = timeout

    @functools.cached_property
    def client(self) -> messaging.RPCClient:
        """The oslo.messaging client, built on first use (after rpc.init)."""
        timeout = self._timeout
        if timeout is None:
            timeout = CONF.conductor.rpc_timeout
        return rpc.get_client(rpc.COMPUTE_TOPIC, self.RPC_API_VERSION,
                              version_cap=self._version_cap,
                              timeout=timeout)

    def can_send_version(self, version: str) -> bool:
        """Whether the cap allows sending messages of ``version``."""
        return self.client.can_send_version(version)

    def _prepare(self, host: str, version: str = '1.0') -> _NodeCall:
        cctxt = self.client.prepare(
            server=host, version=version,
            transport_options=messaging.TransportOptions(at_least_once=True))
        return _NodeCall(cctxt, host, self.client.timeout or 60)

    def _image_kwargs(self, image: str | None) -> tuple[str, dict]:
        if image is None:
            return '1.0', {}
        if not self.can_send_version('1.1'):
            # An older compute node cannot run images: it ignores them
            # with the process driver, which is all it has.
            return '1.0', {}
        return '1.1', {'image': image}

    def start_vhsm(self, ctxt: cc_context.RequestContext, host: str,
                   vhsm_id: str, group_id: str,
                   image: str | None = None) -> dict:
        """Start vHSM ``vhsm_id`` of ``group_id`` on ``host``; its status."""
        version, extra = self._image_kwargs(image)
        return self._prepare(host, version).call(
            ctxt, 'start_vhsm', vhsm_id=vhsm_id, group_id=group_id, **extra)

    def start_instance(self, ctxt: cc_context.RequestContext, host: str,
                       instance_id: str, service_id: str, group_id: str,
                       vhsm_endpoints: list[str],
                       credentials: list[dict],
                       image: str | None = None) -> dict:
        """Start a service instance on ``host``; its workload status.

        ``vhsm_endpoints`` are ``host:port`` strings; ``credentials`` are
        ``{id, project_id, secret_sha256}`` dicts (hashes, never tokens).
        """
        version, extra = self._image_kwargs(image)
        return self._prepare(host, version).call(
            ctxt, 'start_instance', instance_id=instance_id,
            service_id=service_id, group_id=group_id,
            vhsm_endpoints=list(vhsm_endpoints),
            credentials=[dict(c) for c in credentials], **extra)

    def _replica_version(self, host: str, action: str) -> str:
        if not self.can_send_version('1.2'):
            raise exception.ComputeTooOld(host=host, action=action,
                                          version='1.2')
        return '1.2'

    def prepare_instance(self, ctxt: cc_context.RequestContext, host: str,
                         instance_id: str, service_id: str, group_id: str,
                         vhsm_endpoints: list[str],
                         credentials: list[dict], image: str | None = None,
                         port: int | None = None) -> dict:
        """Prepare a replica on ``host`` (ready to run, not running).

        Its status says "prepared".  ``port`` is the port of its primary
        on the same node, to take over that host:port when activated;
        None lets the node allocate one.  ComputeTooOld when the version
        cap is below 1.2.
        """
        version = self._replica_version(host, 'prepare replicas')
        return self._prepare(host, version).call(
            ctxt, 'prepare_instance', instance_id=instance_id,
            service_id=service_id, group_id=group_id,
            vhsm_endpoints=list(vhsm_endpoints),
            credentials=[dict(c) for c in credentials], image=image,
            port=port)

    def activate_workload(self, ctxt: cc_context.RequestContext, host: str,
                          workload_id: str) -> dict:
        """Start a prepared workload on ``host``; its status once it
        answers (WorkloadStartFailed otherwise, the workload left
        prepared).  ComputeTooOld when the version cap is below 1.2.
        """
        version = self._replica_version(host, 'activate replicas')
        return self._prepare(host, version).call(
            ctxt, 'activate_workload', workload_id=workload_id)

    def update_instance(self, ctxt: cc_context.RequestContext, host: str,
                        instance_id: str, vhsm_endpoints: list[str],
                        credentials: list[dict]) -> dict:
        """Rewrite an instance's vHSMs and credentials and reload it."""
        return self._prepare(host).call(
            ctxt, 'update_instance', instance_id=instance_id,
            vhsm_endpoints=list(vhsm_endpoints),
            credentials=[dict(c) for c in credentials])

    def stop_workload(self, ctxt: cc_context.RequestContext, host: str,
                      workload_id: str) -> dict:
        """Stop and remove a workload on ``host`` (idempotent); ``{}``."""
        return self._prepare(host).call(ctxt, 'stop_workload',
                                        workload_id=workload_id)

    def list_workloads(self, ctxt: cc_context.RequestContext,
                       host: str) -> list[dict]:
        """The status of every workload on ``host``."""
        return self._prepare(host).call(ctxt, 'list_workloads')
