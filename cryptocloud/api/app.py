"""The admin API application (pecan), wrapped in its middleware.

``setup_app`` builds the whole WSGI stack, outermost first::

    JsonErrors -> BodyLimit -> StripIdentity -> PublicRoutes
        -> auth (keystonemiddleware auth_token, or http_basic) -> pecan

There is no unauthenticated mode: only the version documents (``/`` and
``/v1``) answer without credentials.
"""

import pecan
from oslo_config import cfg

from cryptocloud.api import auth_basic
from cryptocloud.api import hooks
from cryptocloud.api import middleware
from cryptocloud.api import routes
from cryptocloud.api.controllers import root
from cryptocloud.common import exception

PUBLIC_PATHS = tuple(r.template for r in routes.ROUTES if r.public)


def _pecan_app(connection, conductor_api, challenge: str | None):
    return pecan.make_app(
        root.RootController(),
        hooks=[hooks.BodyHook(), hooks.ContextHook(),
               hooks.ResourcesHook(connection, conductor_api),
               hooks.ErrorHook(challenge)],
        # JSON only: "/v1/services/x.json" is not a request for JSON.
        guess_content_type_from_ext=False,
        # "/v1/nodes" and "/v1/nodes/" are the same path, never redirects.
        force_canonical=False,
        logging=False, debug=False, static_root=None)


def _keystone(app, conf: cfg.ConfigOpts):
    # Imported here: clouds on http_basic need not configure Keystone.
    from keystonemiddleware import auth_token

    return auth_token.AuthProtocol(app, {'oslo_config_config': conf})


def setup_app(conf: cfg.ConfigOpts | None = None, connection=None,
              conductor_api=None):
    """The admin API as a WSGI application."""
    conf = conf or cfg.CONF
    if connection is None:
        from cryptocloud.db import api as db_api
        connection = db_api.Connection(
            conf.database.connection,
            max_pool_size=conf.database.max_pool_size,
            pool_timeout=conf.database.pool_timeout)
    if conductor_api is None:
        from cryptocloud.conductor import rpcapi
        conductor_api = rpcapi.ConductorAPI()
    strategy = conf.api.auth_strategy
    if strategy == 'keystone':
        # keystonemiddleware adds its own challenge to every 401.
        app = _pecan_app(connection, conductor_api, None)
        authenticated = _keystone(app, conf)
    elif strategy == 'http_basic':
        app = _pecan_app(connection, conductor_api, auth_basic.CHALLENGE)
        authenticated = auth_basic.BasicAuth(
            app, conf.api.http_basic_auth_user_file)
    else:
        raise exception.ConfigurationError(
            reason='unknown [api] auth_strategy %s' % strategy)
    stack = middleware.PublicRoutes(app, authenticated, PUBLIC_PATHS)
    stack = middleware.StripIdentity(stack)
    stack = middleware.BodyLimit(stack, conf.api.max_body_size)
    return middleware.JsonErrors(stack)
