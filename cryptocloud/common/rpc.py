"""oslo.messaging plumbing shared by the API, conductor and compute.

Native threads only: servers use oslo.messaging's default (threading)
executor; nothing is monkey-patched.  Payloads are plain JSON-able dicts;
the request context travels beside them as a dict.
"""

# Selects oslo.service's threading backend; oslo.messaging imports
# oslo.service, which would otherwise pick eventlet.
from cryptocloud.common import threading_backend  # noqa: F401

# isort: split

import oslo_messaging as messaging
from oslo_config import cfg
from oslo_messaging import opts as messaging_opts

from cryptocloud.common import context as cc_context
from cryptocloud.common import exception

CONDUCTOR_TOPIC = 'cryptocloud-conductor'
COMPUTE_TOPIC = 'cryptocloud-compute'

# Exceptions a server may raise that the caller rebuilds as the same class.
ALLOWED_EXMODS = ['cryptocloud.common.exception']

_TRANSPORT = None

messaging.set_transport_defaults(control_exchange='cryptocloud')


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register oslo.messaging's options now, so that defaults such as
    ``transport_url`` can be set before the transport exists."""
    for group, opts in messaging_opts.list_opts():
        conf.register_opts(opts, group=group)


register_opts(cfg.CONF)


class _ContextSerializer(messaging.Serializer):
    """Sends the context as a dict; entities are already plain data."""

    def serialize_entity(self, ctxt, entity):
        return entity

    def deserialize_entity(self, ctxt, entity):
        return entity

    def serialize_context(self, ctxt):
        return ctxt.to_dict()

    def deserialize_context(self, ctxt):
        return cc_context.RequestContext.from_dict(ctxt)


def init(conf: cfg.ConfigOpts) -> None:
    """Create the transport from ``[DEFAULT] transport_url``."""
    global _TRANSPORT
    if _TRANSPORT is None:
        _TRANSPORT = messaging.get_rpc_transport(
            conf, allowed_remote_exmods=ALLOWED_EXMODS)


def cleanup() -> None:
    global _TRANSPORT
    if _TRANSPORT is not None:
        _TRANSPORT.cleanup()
        _TRANSPORT = None


def _transport():
    if _TRANSPORT is None:
        raise exception.ConfigurationError(
            reason='rpc.init() was not called')
    return _TRANSPORT


def get_client(topic: str, version: str, *, server: str | None = None,
               version_cap: str | None = None,
               timeout: int | None = None) -> messaging.RPCClient:
    """An RPC client for ``topic`` (and ``server``, for compute nodes)."""
    target = messaging.Target(topic=topic, version=version, server=server)
    return messaging.get_rpc_client(_transport(), target,
                                    version_cap=version_cap,
                                    serializer=_ContextSerializer(),
                                    timeout=timeout)


def get_server(topic: str, server: str, version: str, endpoints: list):
    """An RPC server on the threading executor (no eventlet)."""
    target = messaging.Target(topic=topic, server=server, version=version)
    return messaging.get_rpc_server(
        _transport(), target, endpoints, serializer=_ContextSerializer(),
        access_policy=messaging.DefaultRPCAccessPolicy)
