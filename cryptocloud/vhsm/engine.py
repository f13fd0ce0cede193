"""The vHSM engine: turns internal-protocol operations into crypto work.

``Engine.dispatch(op, project, args)`` is what the protocol server calls for
every authenticated request.  Key lifecycle lives in ``keys.KeyManager``;
this module holds the cryptographic operations and the batch runner.
"""

import concurrent.futures
import threading

from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.crypto import digest
from cryptocloud.crypto import sm2
from cryptocloud.vhsm import argcheck
from cryptocloud.vhsm import keys

LOG = logging.getLogger(__name__)

MAX_DATA = 64 * 1024 * 1024
MAX_USER_ID = sm2.MAX_USER_ID_SIZE
MAX_RANDOM = 1024
MAX_BATCH = 10000
DATAKEY_SPECS = {'SM4_128': 16, 'AES_128': 16, 'AES_256': 32}
HASH_ALGORITHMS = ('SM3', 'SHA256', 'SHA384', 'SHA512')
SIG_OPTIONS = ('user_id', 'signature_format', 'padding', 'hash')


def _data(args: dict, name: str, *, required: bool = True) -> bytes | None:
    return argcheck.get(args, name, bytes, required=required, max_len=MAX_DATA)


def _sig_options(args: dict) -> dict:
    opts = {
        'user_id': argcheck.get(args, 'user_id', bytes, max_len=MAX_USER_ID),
        'signature_format': argcheck.get(args, 'signature_format', str),
        'padding': argcheck.get(args, 'padding', str),
        'hash': argcheck.get(args, 'hash', str),
    }
    return {k: v for k, v in opts.items() if v is not None}


def _message_or_digest(args: dict) -> tuple[bytes | None, bytes | None]:
    message = _data(args, 'message', required=False)
    dgst = _data(args, 'digest', required=False)
    if (message is None) == (dgst is None):
        raise exception.InvalidInput(
            reason='give exactly one of message and digest')
    return message, dgst


class Engine:
    """Executes operations for one vHSM group member."""

    def __init__(self, key_manager: keys.KeyManager, *, group_id: str,
                 member_id: str, batch_threads: int = 2):
        self.keys = key_manager
        self.group_id = group_id
        self.member_id = member_id
        self._batch_threads = batch_threads
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=batch_threads, thread_name_prefix='vhsm-batch')
        self._ops = {
            'ping': self.ping,
            'key.create': self.key_create,
            'key.list': self.key_list,
            'key.get': self.key_get,
            'key.update': self.key_update,
            'key.enable': self.key_enable,
            'key.disable': self.key_disable,
            'key.rotate': self.key_rotate,
            'key.schedule_deletion': self.key_schedule_deletion,
            'key.cancel_deletion': self.key_cancel_deletion,
            'key.public': self.key_public,
            'key.export': self.key_export,
            'batch': self.batch,
        }
        self._crypto_ops = {
            'encrypt': self.encrypt,
            'decrypt': self.decrypt,
            'rewrap': self.rewrap,
            'sign': self.sign,
            'verify': self.verify,
            'hmac': self.hmac,
            'hmac_verify': self.hmac_verify,
            'hash': self.hash,
            'random': self.random,
            'datakey': self.datakey,
        }
        self._ops.update(self._crypto_ops)
        self._stop = threading.Event()
        self._purger = None

    # -- dispatch ---------------------------------------------------------

    @property
    def operations(self) -> frozenset[str]:
        return frozenset(self._ops)

    def dispatch(self, op: str, project: str, args: dict) -> dict:
        """Run one operation for ``project``; raise CryptoCloudException."""
        # A non-string op (a list from msgpack, say) is unhashable: look
        # up strings only, so it is refused like any unknown operation.
        func = self._ops.get(op) if isinstance(op, str) else None
        if func is None:
            raise exception.InvalidInput(reason='unknown operation %r'
                                         % str(op)[:64])
        # ping touches no key, so it alone may come without a project:
        # the service's health check (VHSMClient.ping_all) sends none.
        if not isinstance(project, str) or (not project and op != 'ping'):
            raise exception.Unauthorized(reason='no project in the request')
        if not isinstance(args, dict):
            raise exception.InvalidInput(reason='args must be a map')
        return func(project, args)

    # -- background -------------------------------------------------------

    def start_purger(self, interval: float) -> None:
        """Destroy keys past their deletion date every ``interval`` s."""
        def loop():
            while not self._stop.wait(interval):
                try:
                    self.keys.purge_due()
                except Exception:
                    LOG.exception('Purging keys due for deletion failed; '
                                  'will try again.')
        self._purger = threading.Thread(target=loop, name='vhsm-purge',
                                        daemon=True)
        self._purger.start()

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._purger is not None:
            self._purger.join(timeout=5)

    # -- key lifecycle ----------------------------------------------------

    def ping(self, project: str, args: dict) -> dict:
        return {'group_id': self.group_id, 'member_id': self.member_id}

    def key_create(self, project: str, args: dict) -> dict:
        return self.keys.create(
            project,
            argcheck.get(args, 'key_id', str, required=True, max_len=36),
            argcheck.get(args, 'algorithm', str, required=True, max_len=32),
            argcheck.get(args, 'purpose', str, max_len=16),
            argcheck.get(args, 'name', str, max_len=keys.MAX_NAME_LENGTH),
            argcheck.get(args, 'description', str,
                  max_len=keys.MAX_DESCRIPTION_LENGTH),
            argcheck.get(args, 'exportable', bool, default=False))

    def key_list(self, project: str, args: dict) -> dict:
        return {'keys': self.keys.list_keys(
            project,
            argcheck.get_int(args, 'limit', default=100, minimum=1,
                             maximum=1000),
            argcheck.get(args, 'marker', str, max_len=36),
            argcheck.get_choice(args, 'state', states.KEY_STATES))}

    def _key_id(self, args: dict) -> str:
        return argcheck.get(args, 'key_id', str, required=True, max_len=64)

    def key_get(self, project: str, args: dict) -> dict:
        return self.keys.get(project, self._key_id(args))

    def key_update(self, project: str, args: dict) -> dict:
        return self.keys.configure(
            project, self._key_id(args),
            description=argcheck.get(args, 'description', str,
                              max_len=keys.MAX_DESCRIPTION_LENGTH),
            min_decryption_version=argcheck.get_int(
                args, 'min_decryption_version', minimum=1),
            exportable=argcheck.get(args, 'exportable', bool))

    def key_enable(self, project: str, args: dict) -> dict:
        return self.keys.enable(project, self._key_id(args))

    def key_disable(self, project: str, args: dict) -> dict:
        return self.keys.disable(project, self._key_id(args))

    def key_rotate(self, project: str, args: dict) -> dict:
        return self.keys.rotate(project, self._key_id(args))

    def key_schedule_deletion(self, project: str, args: dict) -> dict:
        return self.keys.schedule_deletion(
            project, self._key_id(args),
            argcheck.get_int(args, 'pending_days',
                             default=keys.MAX_PENDING_DAYS,
                             minimum=keys.MIN_PENDING_DAYS,
                             maximum=keys.MAX_PENDING_DAYS))

    def key_cancel_deletion(self, project: str, args: dict) -> dict:
        return self.keys.cancel_deletion(project, self._key_id(args))

    def key_public(self, project: str, args: dict) -> dict:
        return self.keys.public_key(
            project, self._key_id(args),
            argcheck.get_int(args, 'version', minimum=1))

    def key_export(self, project: str, args: dict) -> dict:
        return self.keys.export(
            project, self._key_id(args),
            argcheck.get_int(args, 'version', minimum=1))

    # -- cryptographic operations -----------------------------------------

    def encrypt(self, project: str, args: dict) -> dict:
        key_id = self._key_id(args)
        rec = self.keys.usable(project, key_id, 'encrypt', 'encrypt')
        handle = self.keys.handle(rec, rec.latest_version)
        ciphertext = handle.encrypt(
            _data(args, 'plaintext'), _data(args, 'aad', required=False),
            ciphertext_format=argcheck.get(args, 'ciphertext_format', str))
        return {'key_id': key_id, 'version': rec.latest_version,
                'ciphertext': ciphertext}

    def _decrypt(self, project: str, args: dict, operation: str):
        key_id = self._key_id(args)
        rec = self.keys.usable(project, key_id, 'encrypt', operation)
        version = argcheck.get_int(args, 'version', required=True, minimum=1)
        handle = self.keys.decryption_handle(rec, version)
        plaintext = handle.decrypt(
            _data(args, 'ciphertext'), _data(args, 'aad', required=False),
            ciphertext_format=argcheck.get(args, 'ciphertext_format', str))
        return rec, version, plaintext

    def decrypt(self, project: str, args: dict) -> dict:
        rec, version, plaintext = self._decrypt(project, args, 'decrypt')
        return {'key_id': rec.key_id, 'version': version,
                'plaintext': plaintext}

    def rewrap(self, project: str, args: dict) -> dict:
        """Decrypt under an old version, encrypt under the latest."""
        rec, _, plaintext = self._decrypt(project, args, 'rewrap')
        handle = self.keys.handle(rec, rec.latest_version)
        ciphertext = handle.encrypt(
            plaintext, _data(args, 'aad', required=False),
            ciphertext_format=argcheck.get(args, 'ciphertext_format', str))
        return {'key_id': rec.key_id, 'version': rec.latest_version,
                'ciphertext': ciphertext}

    def sign(self, project: str, args: dict) -> dict:
        key_id = self._key_id(args)
        rec = self.keys.usable(project, key_id, 'sign', 'sign')
        message, dgst = _message_or_digest(args)
        signature = self.keys.handle(rec, rec.latest_version).sign(
            message, digest=dgst, **_sig_options(args))
        return {'key_id': key_id, 'version': rec.latest_version,
                'signature': signature}

    def verify(self, project: str, args: dict) -> dict:
        key_id = self._key_id(args)
        rec = self.keys.usable(project, key_id, 'sign', 'verify')
        version = argcheck.get_int(args, 'version', minimum=1,
                            default=rec.latest_version)
        message, dgst = _message_or_digest(args)
        valid = self.keys.decryption_handle(rec, version).verify(
            _data(args, 'signature'), message, digest=dgst,
            **_sig_options(args))
        return {'key_id': key_id, 'version': version, 'valid': bool(valid)}

    def hmac(self, project: str, args: dict) -> dict:
        key_id = self._key_id(args)
        rec = self.keys.usable(project, key_id, 'mac', 'hmac')
        mac = self.keys.handle(rec, rec.latest_version).mac(
            _data(args, 'data'))
        return {'key_id': key_id, 'version': rec.latest_version, 'mac': mac}

    def hmac_verify(self, project: str, args: dict) -> dict:
        key_id = self._key_id(args)
        rec = self.keys.usable(project, key_id, 'mac', 'hmac_verify')
        version = argcheck.get_int(args, 'version', minimum=1,
                            default=rec.latest_version)
        valid = self.keys.decryption_handle(rec, version).verify_mac(
            _data(args, 'data'),
            argcheck.get(args, 'mac', bytes, required=True, max_len=1024))
        return {'key_id': key_id, 'version': version, 'valid': bool(valid)}

    def hash(self, project: str, args: dict) -> dict:
        algorithm = argcheck.get_choice(args, 'algorithm', HASH_ALGORITHMS,
                                 default='SM3')
        return {'algorithm': algorithm,
                'digest': digest.hash_data(algorithm, _data(args, 'data'))}

    def random(self, project: str, args: dict) -> dict:
        length = argcheck.get_int(args, 'length', required=True, minimum=1,
                           maximum=MAX_RANDOM)
        return {'random': digest.random_bytes(length)}

    def datakey(self, project: str, args: dict) -> dict:
        """A fresh data key, encrypted under the tenant's key."""
        key_id = self._key_id(args)
        spec = argcheck.get_choice(args, 'spec', DATAKEY_SPECS,
                                   default='AES_256')
        rec = self.keys.usable(project, key_id, 'encrypt', 'datakey')
        data_key = digest.random_bytes(DATAKEY_SPECS[spec])
        ciphertext = self.keys.handle(rec, rec.latest_version).encrypt(
            data_key, _data(args, 'aad', required=False))
        result = {'key_id': key_id, 'version': rec.latest_version,
                  'ciphertext': ciphertext}
        if argcheck.get(args, 'include_plaintext', bool, default=True):
            result['plaintext'] = data_key
        return result

    # -- batch --------------------------------------------------------------

    def _run_item(self, project: str, item) -> dict:
        try:
            if not isinstance(item, dict):
                raise exception.InvalidInput(reason='a batch item must be '
                                             'a map with op and args')
            op = item.get('op')
            func = self._crypto_ops.get(op) if isinstance(op, str) else None
            if func is None:
                raise exception.InvalidInput(
                    reason='batch items may only be %s'
                           % ', '.join(sorted(self._crypto_ops)))
            item_args = item.get('args')
            if not isinstance(item_args, dict):
                raise exception.InvalidInput(reason='args must be a map')
            return {'ok': True, 'result': func(project, item_args)}
        except exception.CryptoCloudException as exc:
            return {'ok': False, 'error': exc.to_dict()}
        except Exception:
            LOG.exception('Batch item %s failed unexpectedly.',
                          str(item.get('op'))[:32] if isinstance(item, dict)
                          else '?')
            return {'ok': False, 'error': {
                'code': 500, 'type': 'InternalError',
                'message': 'internal error in the vHSM'}}

    def _run_chunk(self, project: str, items: list) -> list[dict]:
        return [self._run_item(project, item) for item in items]

    def batch(self, project: str, args: dict) -> dict:
        """Run many crypto operations; one result per item, in order.

        Items are split into contiguous chunks run on ``batch_threads``
        threads (OpenSSL releases the GIL, so signatures run in parallel);
        the calling thread takes the first chunk itself.
        """
        items = argcheck.get(args, 'items', list, required=True,
                             max_len=MAX_BATCH)
        if not items:
            return {'results': []}
        chunks = min(self._batch_threads, len(items))
        size = -(-len(items) // chunks)
        parts = [items[i:i + size] for i in range(0, len(items), size)]
        futures = [self._pool.submit(self._run_chunk, project, part)
                   for part in parts[1:]]
        results = self._run_chunk(project, parts[0])
        for future in futures:
            results.extend(future.result())
        return {'results': results}
