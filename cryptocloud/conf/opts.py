"""Option discovery for oslo-config-generator (entry point
``oslo.config.opts = cryptocloud``)."""

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

_MODULES = (api, compute, conductor, cryptoservice, database, docker,
            images, keystore, proxy, vhsm)


def list_opts():
    """Return ``[(group, opts), ...]`` for every option group."""
    result = []
    for module in _MODULES:
        result.extend(module.list_opts())
    return result
