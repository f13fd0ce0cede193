"""[proxy]: the stable service endpoint in front of a service's instances."""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'proxy', title='Service endpoint proxy',
    help='With driver = haproxy, each conductor runs HAProxy and writes '
         'its configuration from the current instances: the tenant\'s '
         'host and port belong to the proxy and survive failover and '
         'scaling. With driver = none, the endpoint is an instance\'s own '
         'host and port (a replica on the same node takes over that '
         'port).')

OPTS = [
    cfg.StrOpt('driver', default='none',
               choices=[('none', 'The endpoint is an instance\'s own.'),
                        ('haproxy', 'HAProxy fronts each service.')],
               help='What gives a service its stable endpoint.'),
    cfg.HostAddressOpt('address', default='127.0.0.1',
                       help='Address HAProxy listens on and tenants are '
                            'given.'),
    cfg.PortOpt('port_range_start', default=30000,
                help='First frontend port handed to services.'),
    cfg.PortOpt('port_range_end', default=30999,
                help='Last frontend port handed to services.'),
    cfg.StrOpt('haproxy_binary', default='/usr/sbin/haproxy',
               help='The haproxy program.'),
    cfg.StrOpt('state_path', default='/var/lib/cryptocloud/proxy',
               help='Directory for the HAProxy configuration, pid file '
                    'and log.'),
    cfg.IntOpt('check_interval_ms', default=500, min=100, max=60000,
               help='Milliseconds between HAProxy\'s health checks of '
                    'each instance (GET /healthz).'),
    cfg.FloatOpt('sync_interval', default=5.0, min=0.5, max=3600.0,
                 help='Seconds between configuration checks when no '
                      'workflow asked for one.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
