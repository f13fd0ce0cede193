"""The vHSM group's domain key: created once, sealed, unsealed at start."""

from oslo_log import log as logging

from cryptocloud.crypto import wrapping

LOG = logging.getLogger(__name__)


def load_domain_key(keystore, master_key: bytes, group_id: str) -> bytes:
    """Return the group's domain key, creating and sealing it if needed.

    The first member of a group to start makes the key.  When two members
    start together both try; the keystore keeps the first insert and hands
    it back to the loser, so every member ends up with the same key.
    """
    sealed = keystore.get_domain_key(group_id)
    if sealed is None:
        candidate = wrapping.new_domain_key()
        sealed = keystore.put_domain_key(
            group_id,
            wrapping.seal_domain_key(master_key, candidate, group_id))
        LOG.info('Domain key of vHSM group %s is in the keystore.',
                 group_id)
    return wrapping.unseal_domain_key(master_key, sealed, group_id)
