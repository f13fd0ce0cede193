"""Configuration: every option group registered on the global CONF.

oslo.messaging registers some of its options only on the global
``cfg.CONF`` (see RECIPES), so cryptocloud uses that object everywhere.
"""

from oslo_config import cfg

from cryptocloud.conf import cryptoservice
from cryptocloud.conf import keystore
from cryptocloud.conf import vhsm

CONF = cfg.CONF

cryptoservice.register_opts(CONF)
keystore.register_opts(CONF)
vhsm.register_opts(CONF)
