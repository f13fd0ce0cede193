"""[docker]: the Docker workload driver of the compute daemon."""

from oslo_config import cfg

GROUP = cfg.OptGroup('docker', title='Docker workload driver',
                     help='Used by cryptocloud-compute when [compute] '
                          'driver = docker: vHSMs and service instances '
                          'run as containers pulled by digest from the '
                          'image registry ([registry]).')

OPTS = [
    cfg.StrOpt('url', default='unix:///var/run/docker.sock',
               help='Docker Engine API address (unix:// socket or '
                    'tcp://host:port).'),
    cfg.IntOpt('api_timeout', default=60, min=1, max=3600,
               help='Seconds to wait for one Docker API call.'),
    cfg.IntOpt('pull_timeout', default=300, min=1, max=86400,
               help='Seconds an image pull may take before the start of '
                    'the workload fails.'),
    cfg.StrOpt('network_mode', default='host',
               choices=[('host', 'Containers share the node\'s network; '
                                 'workloads listen on [compute] address.'),
                        ('bridge', 'Containers sit on Docker\'s bridge; '
                                   'their ports are published on '
                                   '[compute] address only.')],
               help='How workload containers are networked.'),
    cfg.StrOpt('workload_user', default='10001:10001',
               regex=r'^[0-9]+:[0-9]+$',
               help='uid:gid the images run as (the cryptocloud user of '
                    'images/*/Dockerfile). Config and secret files are '
                    'handed to the container owned by it, mode 0600.'),
    cfg.FloatOpt('vhsm_cpus', default=1.0, min=0.0,
                 help='CPU limit of each vHSM container (0: no limit).'),
    cfg.IntOpt('vhsm_memory_mb', default=512, min=0,
               help='Memory limit of each vHSM container in MiB '
                    '(0: no limit).'),
    cfg.FloatOpt('instance_cpus', default=1.0, min=0.0,
                 help='CPU limit of each service instance container '
                      '(0: no limit).'),
    cfg.IntOpt('instance_memory_mb', default=512, min=0,
               help='Memory limit of each service instance container in '
                    'MiB (0: no limit).'),
    cfg.IntOpt('stop_timeout', default=10, min=0, max=3600,
               help='Seconds a container gets to stop after SIGTERM '
                    'before it is killed.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
