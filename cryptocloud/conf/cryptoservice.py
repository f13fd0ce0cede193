"""[cryptoservice]: the tenant-facing crypto service instance."""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'cryptoservice',
    title='Crypto service instance',
    help='The tenant REST API. Each request is authenticated, validated '
         'and sent to one of the associated vHSMs.')

OPTS = [
    cfg.HostAddressOpt('host', default='127.0.0.1',
                       help='Address the REST API listens on.'),
    cfg.PortOpt('port', default=9620,
                help='TCP port the REST API listens on; 0 picks a free '
                     'port (printed in the log at start-up).'),
    cfg.IntOpt('threads', default=16, min=1, max=1024,
               help='Worker threads of the WSGI server.'),
    cfg.StrOpt('auth_strategy', default='credential',
               choices=[('credential',
                         'Service credentials; only their SHA-256 hashes '
                         'are stored, in credentials_file.')],
               help='How tenants authenticate.'),
    cfg.StrOpt('credentials_file',
               default='/etc/cryptocloud/credentials.json',
               mutable=True,
               help='JSON file of service credentials (id, project, '
                    'SHA-256 of the secret), written by "cryptocloud-manage '
                    'credential create". Re-read on SIGHUP and when it '
                    'changes on disk.'),
    cfg.ListOpt('vhsm_endpoints', default=['127.0.0.1:9610'],
                mutable=True,
                help='host:port of every vHSM associated with this '
                     'instance. Re-read on SIGHUP without a restart.'),
    cfg.StrOpt('vhsm_secret_file',
               default='/etc/cryptocloud/vhsm-group.secret',
               help='File holding the vHSM group secret used to '
                    'authenticate to the vHSMs.'),
    cfg.FloatOpt('vhsm_timeout', default=10.0, min=0.1, max=600.0,
                 help='Seconds to wait for one vHSM reply.'),
    cfg.FloatOpt('vhsm_connect_timeout', default=1.0, min=0.05, max=60.0,
                 help='Seconds to wait for a TCP connection to a vHSM '
                      'before trying the next one.'),
    cfg.IntOpt('vhsm_pool_size', default=16, min=1, max=1024,
               help='Largest number of idle connections kept per vHSM.'),
    cfg.FloatOpt('vhsm_retry_after', default=2.0, min=0.0, max=600.0,
                 help='Seconds an unreachable vHSM is skipped before it '
                      'is tried again.'),
    cfg.StrOpt('vhsm_tls_ca_file',
               help='CA bundle to verify vHSM certificates; enables TLS '
                    'to the vHSMs.'),
    cfg.StrOpt('vhsm_tls_cert_file',
               help='Client certificate for mutual TLS to the vHSMs.'),
    cfg.StrOpt('vhsm_tls_key_file',
               help='Private key of vhsm_tls_cert_file.'),
    cfg.IntOpt('max_body_size', default=1024 * 1024, min=1024,
               max=64 * 1024 * 1024,
               help='Largest request body accepted, in bytes; larger '
                    'bodies get 413.'),
    cfg.IntOpt('batch_max_items', default=256, min=1, max=10000,
               help='Largest number of operations in one batch request.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
