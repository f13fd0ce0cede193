"""[compute]: the daemon on each device or service node."""

from oslo_config import cfg

GROUP = cfg.OptGroup('compute', title='Compute node daemon',
                     help='cryptocloud-compute runs vHSMs (device role) '
                          'and service instances (service role) through '
                          'a workload driver.')

OPTS = [
    cfg.StrOpt('host', sample_default='<hostname>',
               help='Name of this node; compute RPC is addressed to it. '
                    'Defaults to the host name. Several daemons on one '
                    'machine need distinct names.'),
    cfg.HostAddressOpt('address', default='127.0.0.1',
                       help='Address at which this node\'s workloads are '
                            'reachable (handed to tenants as the service '
                            'endpoint).'),
    cfg.ListOpt('roles', default=['device', 'service'],
                item_type=cfg.types.String(choices=['device', 'service']),
                help='What this node runs: device (vHSMs), service '
                     '(service instances) or both.'),
    cfg.IntOpt('vhsm_capacity', default=8, min=0, max=10000,
               help='Most vHSMs this node runs.'),
    cfg.IntOpt('instance_capacity', default=8, min=0, max=10000,
               help='Most service instances this node runs.'),
    cfg.StrOpt('driver', default='process',
               help='Workload driver, by entry point name in '
                    'cryptocloud.compute.drivers: "process" (local '
                    'processes, the all-in-one) or "docker" (containers '
                    'from the image registry, see [docker]).'),
    cfg.StrOpt('state_path', default='/var/lib/cryptocloud/compute',
               help='Directory for workload config, secret and log '
                    'files.'),
    cfg.PortOpt('port_range_start', default=20000,
                help='First TCP port handed to workloads on this node.'),
    cfg.PortOpt('port_range_end', default=29999,
                help='Last TCP port handed to workloads on this node.'),
    cfg.IntOpt('heartbeat_interval', default=5, min=1, max=3600,
               help='Seconds between heartbeats (with workload states '
                    'and load) to the conductor.'),
    cfg.FloatOpt('watch_interval', default=0.5, min=0.0, max=60.0,
                 help='Seconds between checks of the workloads\' states '
                      'between heartbeats. A workload that was running '
                      'and exited makes the next heartbeat go at once, so '
                      'that a replica takes over without waiting for the '
                      'heartbeat interval. 0 turns the check off.'),
    cfg.IntOpt('unhealthy_threshold', default=3, min=0, max=1000,
               help='Health probes in a row (one per heartbeat) that a '
                    'running workload which had been healthy may fail '
                    'before it is reported failed, so that it is '
                    'replaced and a replica takes over: a process that '
                    'hangs without exiting. 0 never reports a running '
                    'workload failed.'),
    cfg.StrOpt('master_key_file', default='/etc/cryptocloud/master.key',
               help='Operator master key, given to the vHSMs of this '
                    'node (device role).'),
    cfg.StrOpt('group_secret_seed_file',
               default='/etc/cryptocloud/group-secret.seed',
               help='Secret from which the secret of each vHSM group is '
                    'derived (HMAC-SHA-256 over the group id), so that '
                    'no group secret crosses the bus or the database. '
                    'The same file on every compute node.'),
    cfg.StrOpt('keystore_connection', secret=True,
               default='sqlite:////var/lib/cryptocloud/keystore.sqlite',
               help='Keystore database URL given to the vHSMs of this '
                    'node. One keystore holds every group (rows carry '
                    'the group id).'),
    cfg.FloatOpt('start_timeout', default=30.0, min=1.0, max=3600.0,
                 help='Seconds a workload may take to answer its health '
                      'probe after start.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
