"""[conductor]: scheduling, state machines and periodic tasks."""

from oslo_config import cfg

GROUP = cfg.OptGroup('conductor', title='Conductor',
                     help='cryptocloud-conductor drives every change of '
                          'the control plane.')

OPTS = [
    cfg.StrOpt('host', sample_default='<hostname>',
               help='Name of this conductor (for task ownership and '
                    'logs). Defaults to the host name.'),
    cfg.IntOpt('workers', default=16, min=1, max=1024,
               help='Threads that run slow work (provisioning, '
                    'deletion); when all are busy new tasks wait in '
                    'PENDING and are picked up by the next pass.'),
    cfg.IntOpt('heartbeat_timeout', default=30, min=2, max=3600,
               help='Seconds without a heartbeat after which a compute '
                    'node is DOWN and gets no new work.'),
    cfg.IntOpt('periodic_interval', default=10, min=1, max=3600,
               help='Seconds between passes of the periodic tasks (node '
                    'liveness, reconcile desired counts, recover '
                    'orphaned tasks).'),
    cfg.IntOpt('balancer_interval', default=10, min=1, max=3600,
               help='Seconds between passes of the pressure balancer, '
                    'which applies each service\'s scaling policy. A '
                    'scale-out reacts within about two passes of the '
                    'pressure crossing the upper bound; keep it at or '
                    'above [compute] heartbeat_interval, since load '
                    'figures arrive with heartbeats.'),
    cfg.IntOpt('task_lease', default=60, min=5, max=86400,
               help='Seconds a conductor owns a running task between '
                    'renewals. A task whose lease ran out (its conductor '
                    'died) is taken over or failed by another one.'),
    cfg.IntOpt('rpc_timeout', default=60, min=1, max=3600,
               help='Seconds to wait for a compute node to answer a '
                    'call (starting a workload included).'),
    cfg.IntOpt('provision_timeout', default=120, min=5, max=86400,
               help='Seconds a vHSM group or service may take to become '
                    'ACTIVE before its task fails.'),
    cfg.StrOpt('default_algorithms',
               default='SM2,SM3,SM4_GCM,SM4_CBC,SM4_CTR,AES_256_GCM,'
                       'HMAC_SM3,HMAC_SHA256,EC_P256,EC_P384,RSA_2048,'
                       'RSA_3072,RSA_4096',
               help='Algorithms a service offers when its request names '
                    'none.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
