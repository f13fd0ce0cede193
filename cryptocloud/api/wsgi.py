"""The admin API for a WSGI container (uWSGI, mod_wsgi).

Point the container at this module's ``application``.  It reads the
default config files (``/etc/cryptocloud/cryptocloud.conf``); set
``CRYPTOCLOUD_CONFIG_FILES`` (comma-separated) to use others.  The
container owns the processes and threads; ``cryptocloud-api`` is the
stand-alone alternative.
"""

import os

# cryptocloud.api's __init__ selects oslo.service's threading backend
# before anything here imports oslo.messaging.
from cryptocloud.api import app as app_mod
from cryptocloud.common import rpc
from cryptocloud.common import service
from cryptocloud.db import api as db_api


def initialize_application():
    """Parse the configuration and build the WSGI stack."""
    files = os.environ.get('CRYPTOCLOUD_CONFIG_FILES')
    default_files = [f for f in files.split(',') if f] if files else None
    service.prepare_service([], prog='cryptocloud-api',
                            default_config_files=default_files)
    conf = service.CONF
    rpc.init(conf)
    connection = db_api.Connection(
        conf.database.connection, max_pool_size=conf.database.max_pool_size,
        pool_timeout=conf.database.pool_timeout,
        connect_retries=conf.database.connect_retries)
    connection.check_schema()
    return app_mod.setup_app(conf, connection)


application = initialize_application()
