"""[registry] and [images]: where the two images live and how the
master node builds them."""

from oslo_config import cfg

REGISTRY_GROUP = cfg.OptGroup(
    'registry', title='Image registry',
    help='The Docker registry (Distribution API v2) to which the master '
         'node pushes the vHSM and crypto-service images and from which '
         'compute nodes pull them.')

REGISTRY_OPTS = [
    cfg.StrOpt('address', default='127.0.0.1:5000',
               help='host:port of the registry.'),
    cfg.StrOpt('username',
               help='User for the registry\'s htpasswd (basic) auth; '
                    'unset for a registry without auth.'),
    cfg.StrOpt('password', secret=True,
               help='Password of [registry] username.'),
    cfg.BoolOpt('tls', default=False,
                help='Talk HTTPS to the registry. The Docker Engine of '
                     'each node must trust its certificate too '
                     '(/etc/docker/certs.d/<address>/ca.crt).'),
    cfg.StrOpt('ca_file',
               help='CA bundle that signed the registry\'s certificate '
                    '(default: the system\'s).'),
]

IMAGES_GROUP = cfg.OptGroup(
    'images', title='Image builds',
    help='How cryptocloud-manage images build (and the admin API\'s '
         'image build action) make the two images.')

IMAGES_OPTS = [
    cfg.StrOpt('base_image', default='python:3.11-slim-bookworm',
               help='Image both Dockerfiles start FROM (BASE_IMAGE). It '
                    'needs Python 3.11 with venv, as the wheels are built '
                    'on the master node\'s Python.'),
    cfg.StrOpt('offline_base', default='auto',
               choices=[('auto', 'Build a local Debian base when '
                                 'base_image cannot be pulled.'),
                        ('always', 'Always use the local Debian base.'),
                        ('never', 'Fail when base_image cannot be '
                                  'pulled.')],
               help='When to build the base image locally with '
                    'debootstrap instead of pulling base_image.'),
    cfg.StrOpt('offline_base_image', default='cryptocloud-base:bookworm',
               help='Name of the locally built Debian bookworm base.'),
    cfg.StrOpt('debian_mirror', default='http://deb.debian.org/debian',
               help='Debian mirror debootstrap installs the local base '
                    'from.'),
    cfg.StrOpt('vhsm_repository', default='cryptocloud/vhsm',
               help='Registry repository of the vHSM image.'),
    cfg.StrOpt('cryptoservice_repository',
               default='cryptocloud/cryptoservice',
               help='Registry repository of the crypto-service image.'),
    cfg.StrOpt('source_dir', sample_default='<the installed source tree>',
               help='cryptocloud source tree (with setup.cfg and '
                    'images/) to build from. Defaults to the tree this '
                    'installation came from.'),
    cfg.StrOpt('work_dir', default='/var/lib/cryptocloud/images',
               help='Scratch space for wheels, build contexts and the '
                    'local base\'s root file system.'),
    cfg.StrOpt('docker_url', default='unix:///var/run/docker.sock',
               help='Docker Engine the master node builds with.'),
]


def register_opts(conf):
    conf.register_group(REGISTRY_GROUP)
    conf.register_opts(REGISTRY_OPTS, group=REGISTRY_GROUP)
    conf.register_group(IMAGES_GROUP)
    conf.register_opts(IMAGES_OPTS, group=IMAGES_GROUP)


def list_opts():
    return [(REGISTRY_GROUP, REGISTRY_OPTS), (IMAGES_GROUP, IMAGES_OPTS)]
