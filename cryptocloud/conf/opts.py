"""Option discovery for oslo-config-generator (entry point
``oslo.config.opts = cryptocloud``)."""

from cryptocloud.conf import cryptoservice
from cryptocloud.conf import keystore
from cryptocloud.conf import vhsm

_MODULES = (cryptoservice, keystore, vhsm)


def list_opts():
    """Return ``[(group, opts), ...]`` for every option group."""
    result = []
    for module in _MODULES:
        result.extend(module.list_opts())
    return result
