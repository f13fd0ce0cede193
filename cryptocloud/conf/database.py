"""[database]: the control-plane database (API and conductor only)."""

from oslo_config import cfg

GROUP = cfg.OptGroup('database', title='Control-plane database',
                     help='Nodes, vHSM groups, services, instances, '
                          'associations and tasks. Only cryptocloud-api '
                          'and cryptocloud-conductor connect to it.')

OPTS = [
    cfg.StrOpt('connection', secret=True,
               default='sqlite:////var/lib/cryptocloud/cryptocloud.sqlite',
               help='SQLAlchemy URL of the control-plane database. '
                    'Created by "cryptocloud-dbsync upgrade --schema '
                    'control".'),
    cfg.IntOpt('max_pool_size', default=10, min=1, max=1000,
               help='Largest number of pooled connections.'),
    cfg.IntOpt('pool_timeout', default=10, min=1, max=3600,
               help='Seconds to wait for a free pooled connection.'),
    cfg.IntOpt('connect_retries', default=10, min=0, max=1000,
               help='Retries of the first connection, one second apart.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
