"""[api]: the admin REST API (cryptocloud-api)."""

from oslo_config import cfg

GROUP = cfg.OptGroup('api', title='Admin API',
                     help='The pecan admin API of the control plane.')

OPTS = [
    cfg.HostAddressOpt('host', default='127.0.0.1',
                       help='Address the admin API listens on.'),
    cfg.PortOpt('port', default=9600,
                help='TCP port of the admin API; 0 picks a free port.'),
    cfg.IntOpt('threads', default=16, min=1, max=1024,
               help='Worker threads of the WSGI server.'),
    cfg.StrOpt('auth_strategy', default='http_basic',
               choices=[('keystone', 'keystonemiddleware auth_token in '
                         'front; project, user and roles from its '
                         'headers.'),
                        ('http_basic', 'HTTP basic auth against '
                         'http_basic_auth_user_file (bcrypt htpasswd); '
                         'for clouds without Keystone.')],
               help='How API callers authenticate. There is no '
                    'unauthenticated mode.'),
    cfg.StrOpt('http_basic_auth_user_file',
               default='/etc/cryptocloud/htpasswd',
               help='htpasswd file (bcrypt hashes only) for '
                    'auth_strategy=http_basic. Each line is '
                    'user:hash[:project[:role,role]]; without a project '
                    'the user name is the project, without roles the '
                    'role is "member".'),
    cfg.IntOpt('max_limit', default=1000, min=1, max=100000,
               help='Largest page a list call returns.'),
    cfg.IntOpt('max_body_size', default=256 * 1024, min=1024,
               max=16 * 1024 * 1024,
               help='Largest request body accepted, in bytes.'),
    cfg.StrOpt('public_endpoint',
               help='Base URL the API advertises in links, when it '
                    'sits behind a proxy.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
