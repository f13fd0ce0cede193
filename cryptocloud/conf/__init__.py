"""Configuration: every option group registered on the global CONF.

oslo.messaging registers some of its options only on the global
``cfg.CONF`` (see RECIPES), so cryptocloud uses that object everywhere.
"""

from oslo_config import cfg

from cryptocloud.conf import api
from cryptocloud.conf import compute
from cryptocloud.conf import conductor
from cryptocloud.conf import cryptoservice
from cryptocloud.conf import database
from cryptocloud.conf import docker
from cryptocloud.conf import images
from cryptocloud.conf import keystore
from cryptocloud.conf import proxy
from cryptocloud.conf import vhsm

CONF = cfg.CONF

api.register_opts(CONF)
compute.register_opts(CONF)
conductor.register_opts(CONF)
cryptoservice.register_opts(CONF)
database.register_opts(CONF)
docker.register_opts(CONF)
images.register_opts(CONF)
keystore.register_opts(CONF)
proxy.register_opts(CONF)
vhsm.register_opts(CONF)
