"""Test double of the vHSM client: same ``call(op, project, args)``.

It keeps keys in a dict and does no real cryptography: "ciphertexts" and
"signatures" are reversible tags good enough to check that the REST layer
translates arguments and results faithfully.
"""

import datetime
import hashlib
import threading

from cryptocloud.common import exception

# Default purposes, spelt as the vHSM spells them (crypto/keyspec.py).
_ALGORITHMS = {'SM2': 'sign', 'SM4': 'encrypt', 'AES_256': 'encrypt',
               'HMAC_SM3': 'mac', 'EC_P256': 'sign', 'RSA_2048': 'sign'}


class FakeVHSMClient:
    """In-memory stand-in for cryptocloud.vhsm.client.VHSMClient."""

    def __init__(self):
        self.keys = {}
        self.calls = []
        self.unavailable = False
        self.pings = 0
        # As the real client: True when it answered, else why not.
        self.ping_result = {'127.0.0.1:1': True}
        self._lock = threading.Lock()

    # -- the client interface ----------------------------------------------

    def call(self, op: str, project: str, args: dict) -> dict:
        with self._lock:
            self.calls.append((op, project, args))
        if self.unavailable:
            raise exception.VHSMUnavailable(reason='test says so')
        if op == 'batch':
            return {'results': [self._one(i['op'], project, i['args'])
                                for i in args['items']]}
        return self._do(op, project, args)

    def ping_all(self) -> dict:
        self.pings += 1
        return dict(self.ping_result)

    def set_endpoints(self, endpoints):
        self.endpoints = list(endpoints)

    def close(self):
        pass

    # -- behaviour ------------------------------------------------------------

    def _one(self, op, project, args):
        try:
            return {'ok': True, 'result': self._do(op, project, args)}
        except exception.CryptoCloudException as exc:
            return {'ok': False, 'error': exc.to_dict()}

    def _key(self, project, key_id):
        key = self.keys.get(key_id)
        if key is None or key['project_id'] != project:
            raise exception.KeyNotFound(key_id=key_id)
        return key

    def _usable(self, project, key_id, op):
        key = self._key(project, key_id)
        if key['state'] != 'ENABLED':
            raise exception.InvalidKeyState(key_id=key_id,
                                            state=key['state'], action=op)
        return key

    def _do(self, op, project, args):
        handler = getattr(self, '_op_' + op.replace('.', '_'), None)
        if handler is None:
            raise exception.InvalidInput(reason='unknown op %s' % op)
        return handler(project, args)

    def _op_ping(self, project, args):
        return {'group_id': 'g', 'member_id': 'm1'}

    def _op_key_create(self, project, args):
        if args['algorithm'] not in _ALGORITHMS:
            raise exception.InvalidInput(reason='unknown algorithm')
        now = datetime.datetime(2024, 1, 1).isoformat() + 'Z'
        key = {'key_id': args['key_id'], 'project_id': project,
               'name': args['name'], 'description': args['description'],
               'algorithm': args['algorithm'],
               'purpose': args['purpose'] or _ALGORITHMS[args['algorithm']],
               'state': 'ENABLED', 'exportable': args['exportable'],
               'latest_version': 1, 'min_decryption_version': 1,
               'created_at': now, 'updated_at': now, 'deletion_date': None}
        self.keys[key['key_id']] = key
        return dict(key)

    def _op_key_list(self, project, args):
        keys = sorted((k for k in self.keys.values()
                       if k['project_id'] == project
                       and args['state'] in (None, k['state'])),
                      key=lambda k: k['key_id'])
        if args['marker']:
            keys = [k for k in keys if k['key_id'] > args['marker']]
        return {'keys': [dict(k) for k in keys[:args['limit']]]}

    def _op_key_get(self, project, args):
        return dict(self._key(project, args['key_id']))

    def _op_key_update(self, project, args):
        key = self._key(project, args['key_id'])
        for name in ('description', 'min_decryption_version', 'exportable'):
            if name in args:
                key[name] = args[name]
        return dict(key)

    def _set_state(self, project, args, state):
        key = self._key(project, args['key_id'])
        key['state'] = state
        return dict(key)

    def _op_key_enable(self, project, args):
        return self._set_state(project, args, 'ENABLED')

    def _op_key_disable(self, project, args):
        return self._set_state(project, args, 'DISABLED')

    def _op_key_cancel_deletion(self, project, args):
        return self._set_state(project, args, 'DISABLED')

    def _op_key_schedule_deletion(self, project, args):
        key = self._key(project, args['key_id'])
        key['deletion_date'] = '2024-02-%02dT00:00:00Z' % args['pending_days']
        return self._set_state(project, args, 'PENDING_DELETION')

    def _op_key_rotate(self, project, args):
        key = self._key(project, args['key_id'])
        key['latest_version'] += 1
        return dict(key)

    def _op_key_public(self, project, args):
        key = self._key(project, args['key_id'])
        return {'key_id': key['key_id'],
                'version': args['version'] or key['latest_version'],
                'algorithm': key['algorithm'],
                'public_key_pem': '-----BEGIN PUBLIC KEY-----\n...'}

    def _op_key_export(self, project, args):
        key = self._key(project, args['key_id'])
        if not key['exportable']:
            raise exception.NotExportable(key_id=key['key_id'])
        return {'key_id': key['key_id'],
                'version': args['version'] or key['latest_version'],
                'algorithm': key['algorithm'], 'material': b'\x01' * 16,
                'public_key_pem': None}

    def _op_encrypt(self, project, args):
        key = self._usable(project, args['key_id'], 'encrypt')
        aad = args['aad'] or b''
        return {'key_id': key['key_id'], 'version': key['latest_version'],
                'ciphertext': b'E' + bytes([len(aad)]) + aad
                + args['plaintext']}

    def _op_decrypt(self, project, args):
        key = self._usable(project, args['key_id'], 'decrypt')
        blob = args['ciphertext']
        aad = args['aad'] or b''
        if (blob[:1] != b'E' or args['version'] > key['latest_version']
                or blob[2:2 + blob[1]] != aad):
            raise exception.DecryptionFailed()
        return {'key_id': key['key_id'], 'version': args['version'],
                'plaintext': blob[2 + blob[1]:]}

    def _op_rewrap(self, project, args):
        result = self._op_decrypt(project, args)
        return self._op_encrypt(project, {
            'key_id': args['key_id'], 'plaintext': result['plaintext'],
            'aad': args['aad']})

    def _tag(self, key, args, version):
        data = args.get('message') or args.get('digest')
        uid = args.get('user_id') or b''
        return hashlib.sha256(key['key_id'].encode() + b'%d' % version
                              + uid + data).digest()

    def _op_sign(self, project, args):
        key = self._usable(project, args['key_id'], 'sign')
        version = key['latest_version']
        return {'key_id': key['key_id'], 'version': version,
                'signature': self._tag(key, args, version)}

    def _op_verify(self, project, args):
        key = self._usable(project, args['key_id'], 'verify')
        version = args['version'] or key['latest_version']
        return {'key_id': key['key_id'], 'version': version,
                'valid': args['signature'] == self._tag(key, args, version)}

    def _op_hmac(self, project, args):
        key = self._usable(project, args['key_id'], 'hmac')
        version = key['latest_version']
        return {'key_id': key['key_id'], 'version': version,
                'mac': self._tag(key, {'message': args['data']}, version)}

    def _op_hmac_verify(self, project, args):
        key = self._usable(project, args['key_id'], 'hmac_verify')
        version = args['version'] or key['latest_version']
        mac = self._tag(key, {'message': args['data']}, version)
        return {'key_id': key['key_id'], 'version': version,
                'valid': args['mac'] == mac}

    def _op_datakey(self, project, args):
        key = self._usable(project, args['key_id'], 'datakey')
        size = 16 if args['spec'] in ('SM4_128', 'AES_128') else 32
        result = self._op_encrypt(project, {
            'key_id': key['key_id'], 'plaintext': b'\x02' * size,
            'aad': args['aad']})
        if args['include_plaintext']:
            result['plaintext'] = b'\x02' * size
        return result

    def _op_hash(self, project, args):
        name = {'SM3': 'sha256'}.get(args['algorithm'],
                                     args['algorithm'].lower())
        return {'algorithm': args['algorithm'],
                'digest': hashlib.new(name, args['data']).digest()}

    def _op_random(self, project, args):
        return {'random': b'\x04' * args['length']}
