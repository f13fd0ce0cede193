"""cryptocloud-cryptoservice: the tenant REST API of a service instance."""

import signal
import sys
import threading

from oslo_log import log as logging

from cryptocloud.common import secretfile
from cryptocloud.common import service
from cryptocloud.common import wsgi
from cryptocloud.cryptoservice import app as app_mod
from cryptocloud.cryptoservice import auth
from cryptocloud.cryptoservice import metrics as metrics_mod

CONF = service.CONF
LOG = logging.getLogger(__name__)


def build_client(conf):
    """The vHSM client configured by the [cryptoservice] options."""
    from cryptocloud.vhsm import client
    from cryptocloud.vhsm import protocol

    opts = conf.cryptoservice
    ssl_context = None
    if opts.vhsm_tls_ca_file:
        ssl_context = protocol.make_client_ssl_context(
            opts.vhsm_tls_ca_file, opts.vhsm_tls_cert_file,
            opts.vhsm_tls_key_file)
    secret = secretfile.read_secret_file(opts.vhsm_secret_file)
    return client.VHSMClient(
        opts.vhsm_endpoints, secret, pool_size=opts.vhsm_pool_size,
        timeout=opts.vhsm_timeout, connect_timeout=opts.vhsm_connect_timeout,
        retry_after=opts.vhsm_retry_after, ssl_context=ssl_context)


def main(argv: list[str] | None = None) -> int:
    """Serve the tenant API until SIGTERM or SIGINT."""
    service.prepare_service(argv, prog='cryptocloud-cryptoservice')
    opts = CONF.cryptoservice
    client = build_client(CONF)
    authenticator = auth.from_conf(CONF)
    application = app_mod.CryptoServiceApp(
        client, authenticator, metrics=metrics_mod.Metrics(),
        max_body_size=opts.max_body_size,
        batch_max_items=opts.batch_max_items)
    server = wsgi.serve(application, opts.host, opts.port, opts.threads)
    LOG.info('Crypto service listening on http://%s:%d with %d threads; '
             'vHSMs: %s', server.host, server.port, opts.threads,
             ', '.join(opts.vhsm_endpoints))

    # Signal handlers only set flags: the reload runs in the main loop,
    # outside the handler, where taking locks is safe.
    wake = threading.Event()
    pending = {'reload': False, 'stop': False}

    def on_hup(signum, frame):
        pending['reload'] = True
        wake.set()

    def on_stop(signum, frame):
        pending['stop'] = True
        wake.set()

    signal.signal(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    try:
        while not pending['stop']:
            wake.wait(1.0)
            wake.clear()
            if pending['reload'] and not pending['stop']:
                pending['reload'] = False
                _reload(client, authenticator)
    finally:
        LOG.info('Stopping the crypto service.')
        server.stop()
        client.close()
        LOG.info('Crypto service stopped.')
    return 0


def _reload(client, authenticator) -> None:
    try:
        CONF.mutate_config_files()
        client.set_endpoints(CONF.cryptoservice.vhsm_endpoints)
        if isinstance(authenticator, auth.CredentialAuthenticator):
            # credentials_file is mutable: follow a new path too.
            authenticator.reload(CONF.cryptoservice.credentials_file)
        else:
            authenticator.reload()
    except Exception:
        # A bad edit must not take the service down: keep the old state.
        LOG.exception('Reload on SIGHUP failed; still serving with the '
                      'previous configuration.')
        return
    LOG.info('Reloaded configuration; vHSMs: %s',
             ', '.join(CONF.cryptoservice.vhsm_endpoints))


if __name__ == '__main__':
    sys.exit(main())
