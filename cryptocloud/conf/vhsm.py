"""[vhsm]: the virtual cipher machine server."""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'vhsm',
    title='vHSM server',
    help='A vHSM (virtual cipher machine) serves cryptographic operations '
         'to the service instances of its group over the internal '
         'protocol (docs/internal-protocol.md).')

OPTS = [
    cfg.HostAddressOpt('host', default='127.0.0.1',
                       help='Address the vHSM listens on.'),
    cfg.PortOpt('port', default=9610,
                help='TCP port the vHSM listens on; 0 picks a free port '
                     '(printed in the log at start-up).'),
    cfg.PortOpt('status_port', default=0,
                help='TCP port of the HTTP status endpoint (GET /healthz: '
                     '200 while the server accepts connections and the '
                     'keystore answers, else 503; GET /metrics: '
                     'Prometheus text with operations and errors per '
                     'operation, a latency histogram and operations in '
                     'flight), served on the same address as the vHSM. '
                     '0 turns the endpoint off.'),
    cfg.StrOpt('group_id', default='default',
               regex=r'^[A-Za-z0-9_.-]{1,64}$',
               help='Identifier of the vHSM group this member belongs to. '
                    'Members of a group share the keystore database and '
                    'the domain key.'),
    cfg.StrOpt('member_id',
               help='Identifier of this member within its group, for logs '
                    'and metrics. Defaults to "<hostname>:<port>".'),
    cfg.StrOpt('master_key_file',
               default='/etc/cryptocloud/master.key',
               help='File holding the operator master key that seals the '
                    'group domain key (created by "cryptocloud-manage '
                    'master-key create"). Refused when readable or '
                    'writable by group or others.'),
    cfg.StrOpt('auth_secret_file',
               default='/etc/cryptocloud/vhsm-group.secret',
               help='File holding the group secret with which service '
                    'instances authenticate (challenge-response) before '
                    'any request is served. Same permission rules as the '
                    'master key file.'),
    cfg.IntOpt('workers', default=32, min=1, max=1024,
               help='Largest number of client connections served at '
                    'once; each connection is served by one thread.'),
    cfg.IntOpt('batch_threads', default=2, min=1, max=64,
               help='Threads that run the items of one batch request in '
                    'parallel (OpenSSL releases the GIL, so up to the '
                    'number of cores helps).'),
    cfg.FloatOpt('key_cache_ttl', default=2.0, min=0.0, max=3600.0,
                 help='Seconds a key record read from the keystore is '
                      'trusted before it is read again. A change made '
                      'through another member of the group (disable, '
                      'rotate, schedule deletion) takes effect here '
                      'within this time; the member that made it applies '
                      'it at once.'),
    cfg.IntOpt('key_cache_size', default=4096, min=0, max=1000000,
               help='Largest number of unwrapped key versions held in '
                    'memory.'),
    cfg.IntOpt('purge_interval', default=60, min=1, max=86400,
               help='Seconds between passes that destroy keys whose '
                    'scheduled deletion date has passed.'),
    cfg.IntOpt('max_frame_size', default=4 * 1024 * 1024, min=1024,
               max=256 * 1024 * 1024,
               help='Largest internal-protocol frame accepted, in bytes.'),
    cfg.FloatOpt('handshake_timeout', default=5.0, min=0.1, max=300.0,
                 help='Seconds a new connection has to authenticate.'),
    cfg.StrOpt('tls_cert_file',
               help='PEM certificate for TLS on the internal protocol. '
                    'With tls_key_file set, every connection is TLS.'),
    cfg.StrOpt('tls_key_file',
               help='PEM private key matching tls_cert_file.'),
    cfg.StrOpt('tls_ca_file',
               help='PEM CA bundle; when set, clients must present a '
                    'certificate signed by it (mutual TLS).'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
