"""[keystore]: the database that holds a vHSM group's wrapped keys."""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'keystore',
    title='vHSM keystore database',
    help='The SQL database shared by the members of one vHSM group. It '
         'holds the sealed domain key and tenant keys wrapped under it; '
         'never plaintext key material.')

OPTS = [
    cfg.StrOpt('connection',
               default='sqlite:////var/lib/cryptocloud/keystore.sqlite',
               secret=True,
               help='SQLAlchemy URL of the keystore database, e.g. '
                    'sqlite:////var/lib/cryptocloud/keystore.sqlite, '
                    'mysql+pymysql://user:pass@host/keystore or '
                    'postgresql+psycopg://user:pass@host/keystore. The '
                    'schema is created by "cryptocloud-dbsync upgrade".'),
    cfg.IntOpt('max_pool_size', default=10, min=1, max=1000,
               help='Largest number of connections kept open to the '
                    'database (ignored for SQLite).'),
    cfg.IntOpt('pool_timeout', default=10, min=1, max=3600,
               help='Seconds to wait for a free pooled connection.'),
    cfg.IntOpt('connect_retries', default=10, min=0, max=1000,
               help='How many times to retry the first connection at '
                    'start-up, one second apart.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
