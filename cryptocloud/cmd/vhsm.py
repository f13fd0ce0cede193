"""cryptocloud-vhsm: a virtual cipher machine, member of a vHSM group."""

import functools
import signal
import socket
import sys
import threading

from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.common import secretfile
from cryptocloud.common import service
from cryptocloud.conf import CONF
from cryptocloud.crypto import _libcrypto
from cryptocloud.vhsm import domain
from cryptocloud.vhsm import engine as engine_mod
from cryptocloud.vhsm import keys
from cryptocloud.vhsm import protocol
from cryptocloud.vhsm import server as server_mod
from cryptocloud.vhsm import status as status_mod
from cryptocloud.vhsm.keystore import api as keystore_api

LOG = logging.getLogger(__name__)


def build_server() -> tuple[server_mod.VHSMServer, engine_mod.Engine,
                            status_mod.StatusServer | None]:
    """Open the keystore, unseal the domain key and make the servers.

    The third item is the HTTP status endpoint, None unless
    ``[vhsm] status_port`` is set.
    """
    conf = CONF.vhsm
    _libcrypto.check_backend()
    master_key = secretfile.read_secret_file(conf.master_key_file)
    group_secret = secretfile.read_secret_file(conf.auth_secret_file)
    store = keystore_api.Keystore(
        CONF.keystore.connection,
        max_pool_size=CONF.keystore.max_pool_size,
        pool_timeout=CONF.keystore.pool_timeout,
        connect_retries=CONF.keystore.connect_retries)
    store.check_schema()
    domain_key = domain.load_domain_key(store, master_key, conf.group_id)
    # The master key is needed only to unseal; keep no reference to it.
    del master_key
    member_id = conf.member_id or '%s:%s' % (socket.gethostname(), conf.port)
    manager = keys.KeyManager(store, domain_key, conf.group_id,
                              cache_ttl=conf.key_cache_ttl,
                              cache_size=conf.key_cache_size)
    engine = engine_mod.Engine(manager, group_id=conf.group_id,
                               member_id=member_id,
                               batch_threads=conf.batch_threads)
    ssl_context = None
    if conf.tls_cert_file or conf.tls_key_file:
        if not (conf.tls_cert_file and conf.tls_key_file):
            raise exception.ConfigurationError(
                reason='[vhsm] tls_cert_file and tls_key_file go together')
        ssl_context = protocol.make_server_ssl_context(
            conf.tls_cert_file, conf.tls_key_file, conf.tls_ca_file)
    metrics = (status_mod.OpMetrics(engine.operations)
               if conf.status_port else None)
    server = server_mod.VHSMServer(
        conf.host, conf.port, group_secret, engine.dispatch,
        group_id=conf.group_id, member_id=member_id, workers=conf.workers,
        max_frame_size=conf.max_frame_size,
        handshake_timeout=conf.handshake_timeout, ssl_context=ssl_context,
        metrics=metrics)
    status_server = None
    if metrics is not None:
        status_server = status_mod.StatusServer(
            conf.host, conf.status_port, metrics,
            functools.partial(_health, server, store))
    return server, engine, status_server


def _health(server: server_mod.VHSMServer,
            store: keystore_api.Keystore) -> str | None:
    """None when the vHSM can serve; otherwise why it cannot."""
    if not server.serving:
        return 'the protocol server is not accepting connections'
    try:
        store.check_schema()
    except Exception as exc:
        # The message may quote the database URL: name the type only.
        return 'the keystore is unreachable (%s)' % type(exc).__name__
    return None


def _hup(signum, frame) -> None:
    # Nothing of a vHSM changes without a restart; SIGHUP (sent to every
    # workload on a reload) must not kill it.
    LOG.info('SIGHUP received; a vHSM has nothing to reload.')


def main(argv: list[str] | None = None) -> int:
    """Run a vHSM until SIGTERM or SIGINT."""
    service.prepare_service(argv, prog='cryptocloud-vhsm')
    # Before anything listens: a reload can come as soon as the port
    # answers, and SIGHUP's default action would kill the vHSM.
    signal.signal(signal.SIGHUP, _hup)
    try:
        server, engine, status_server = build_server()
        server.start()
        if status_server is not None:
            status_server.start()
    except (exception.CryptoCloudException, OSError) as exc:
        LOG.error('The vHSM cannot start: %s', exc)
        print('cryptocloud-vhsm: %s' % exc, file=sys.stderr)
        return 1
    host, port = server.address
    LOG.info('vHSM %s of group %s listening on %s:%d.', engine.member_id,
             engine.group_id, host, port)
    engine.start_purger(CONF.vhsm.purge_interval)

    stop = threading.Event()

    def _stop(signum, frame):
        LOG.info('Signal %d received; stopping.', signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop.wait(1.0):
        pass
    if status_server is not None:
        status_server.stop()
    server.shutdown()
    engine.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
