"""Client side of the conductor's RPC API (topic ``cryptocloud-conductor``).

The API casts tasks here; compute daemons register and heartbeat here.
Every argument and result is plain JSON data; the request context travels
beside it as a dict (see :mod:`cryptocloud.common.rpc`).
"""

import functools

import oslo_messaging as messaging

from cryptocloud.common import context as cc_context
from cryptocloud.common import rpc

# Shared by this client and ConductorManager (the server).
RPC_API_VERSION = '1.1'


class ConductorAPI:
    """Client side of the conductor RPC API.

    API version history:

    | 1.0 - Initial version: do_task (cast), register_node (call),
    |       heartbeat (call).
    | 1.1 - ping (call): a conductor checks its own path through the
    |       message bus.
    """

    RPC_API_VERSION = RPC_API_VERSION

    def __init__(self, *, version_cap: str | None = None,
                 timeout: int | None = None,
                 retry: int | None = None) -> None:
        # ``version_cap`` pins what this client sends during a rolling
        # upgrade (a newer API talking to older conductors).
        self._version_cap = version_cap
        self._timeout = timeout
        # Reconnections tried before a call fails while the broker is
        # unreachable; None waits for it however long it takes, backing
        # off up to [oslo_messaging_rabbit] rabbit_interval_max between
        # tries.  A caller that retries on its own (heartbeats) passes a
        # small number, so that its first try after the broker is back
        # goes through instead of sleeping out the back-off.
        self._retry = retry

    @functools.cached_property
    def client(self) -> messaging.RPCClient:
        """The oslo.messaging client, built on first use (after rpc.init)."""
        return rpc.get_client(rpc.CONDUCTOR_TOPIC, self.RPC_API_VERSION,
                              version_cap=self._version_cap,
                              timeout=self._timeout)

    def can_send_version(self, version: str) -> bool:
        """Whether the cap allows sending messages of ``version``."""
        return self.client.can_send_version(version)

    def do_task(self, ctxt: cc_context.RequestContext, task_id: str) -> None:
        """Ask some conductor to run the task recorded as ``task_id``.

        A cast: the caller has already written the task row and answers
        its client at once; a task nobody picks up is found by the
        conductors' periodic pass.
        """
        cctxt = self.client.prepare(version='1.0')
        cctxt.cast(ctxt, 'do_task', task_id=task_id)

    def register_node(self, ctxt: cc_context.RequestContext, host: str,
                      address: str, roles: list[str], vhsm_capacity: int,
                      instance_capacity: int) -> dict:
        """Register (or update) the compute node ``host``; return its row."""
        cctxt = self.client.prepare(version='1.0', retry=self._retry)
        return cctxt.call(ctxt, 'register_node', host=host, address=address,
                          roles=list(roles), vhsm_capacity=vhsm_capacity,
                          instance_capacity=instance_capacity)

    def heartbeat(self, ctxt: cc_context.RequestContext, host: str,
                  workloads: list[dict], load: dict) -> dict:
        """Report that ``host`` is alive, with its workloads and load."""
        cctxt = self.client.prepare(version='1.0', retry=self._retry)
        return cctxt.call(ctxt, 'heartbeat', host=host,
                          workloads=list(workloads), load=dict(load))

    def ping(self, ctxt: cc_context.RequestContext, host: str,
             timeout: float) -> dict:
        """Call the conductor ``host`` through the bus and back.

        A conductor pings itself to learn whether heartbeats can reach
        it; raises (``MessageDeliveryFailure``, ``MessagingTimeout``)
        when the bus is down, after one reconnection at most: the caller
        must not wait out the outage.
        """
        cctxt = self.client.prepare(server=host, version='1.1',
                                    timeout=timeout, retry=1)
        return cctxt.call(ctxt, 'ping')
