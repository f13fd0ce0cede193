"""Every operation of the vHSM engine, through ``Engine.dispatch``.

Real keys, real cryptography and a real SQLite keystore: signatures and
ciphertexts are checked with the public key or the exported material
outside the engine, not only by the engine itself.
"""

import datetime
import time
import uuid

import testscenarios
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.crypto import keyspec
from cryptocloud.crypto import sm2
from cryptocloud.tests.unit.vhsm import base
from cryptocloud.vhsm import engine
from cryptocloud.vhsm import keycache
from cryptocloud.vhsm import keys

PROJECT = base.PROJECT
OTHER = base.OTHER_PROJECT
MESSAGE = b'transfer 100 yuan to account 6222 0000'
PLAINTEXT = b'\x00 card 6222 0000 1111 2222 \xff'

# Purposes an operation needs, for the IncompatibleKeyUsage checks.
OPS_BY_PURPOSE = {
    keyspec.PURPOSE_ENCRYPT: ('encrypt', 'decrypt', 'rewrap', 'datakey'),
    keyspec.PURPOSE_SIGN: ('sign', 'verify'),
    keyspec.PURPOSE_MAC: ('hmac', 'hmac_verify'),
}


def _sha(name: str, data: bytes) -> bytes:
    h = hashes.Hash({'SHA256': hashes.SHA256(), 'SHA384': hashes.SHA384(),
                     'SHA512': hashes.SHA512()}[name])
    h.update(data)
    return h.finalize()


def _digest_for(algorithm: str, pem: str, message: bytes) -> bytes:
    """The digest a caller signs in place of ``message``."""
    if algorithm == 'SM2':
        return sm2.SM2PublicKey.from_pem(pem).digest(message)
    if algorithm == 'EC_P384':
        return _sha('SHA384', message)
    return _sha('SHA256', message)


def _verify_outside(algorithm: str, pem: str, signature: bytes,
                    message: bytes) -> bool:
    """Check a default-options signature with the public key alone."""
    if algorithm == 'SM2':
        return sm2.SM2PublicKey.from_pem(pem).verify(signature, message)
    public = serialization.load_pem_public_key(pem.encode('ascii'))
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, message,
                          padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                      salt_length=padding.PSS.AUTO),
                          hashes.SHA256())
        else:
            hash_cls = (hashes.SHA384 if algorithm == 'EC_P384'
                        else hashes.SHA256)
            public.verify(signature, message, ec.ECDSA(hash_cls()))
    except Exception:
        return False
    return True


def _use_args(purpose: str, key_id: str, material: dict) -> list:
    """(op, args) pairs that use a key of ``purpose`` successfully."""
    if purpose == keyspec.PURPOSE_ENCRYPT:
        return [
            ('encrypt', {'key_id': key_id, 'plaintext': PLAINTEXT}),
            ('decrypt', {'key_id': key_id, 'version': 1,
                         'ciphertext': material['ciphertext']}),
            ('rewrap', {'key_id': key_id, 'version': 1,
                        'ciphertext': material['ciphertext']}),
            ('datakey', {'key_id': key_id}),
        ]
    if purpose == keyspec.PURPOSE_SIGN:
        return [
            ('sign', {'key_id': key_id, 'message': MESSAGE}),
            ('verify', {'key_id': key_id, 'message': MESSAGE,
                        'signature': material['signature']}),
        ]
    return [
        ('hmac', {'key_id': key_id, 'data': MESSAGE}),
        ('hmac_verify', {'key_id': key_id, 'data': MESSAGE,
                         'mac': material['mac']}),
    ]


def _produce(case, purpose: str, key_id: str, eng=None) -> dict:
    """Ciphertext, signature or MAC made with the key's latest version."""
    if purpose == keyspec.PURPOSE_ENCRYPT:
        return {'ciphertext': case.call('encrypt', {
            'key_id': key_id, 'plaintext': PLAINTEXT},
            eng=eng)['ciphertext']}
    if purpose == keyspec.PURPOSE_SIGN:
        return {'signature': case.call('sign', {
            'key_id': key_id, 'message': MESSAGE}, eng=eng)['signature']}
    return {'mac': case.call('hmac', {'key_id': key_id, 'data': MESSAGE},
                             eng=eng)['mac']}


def _scenarios():
    return [('%s-%s' % (name, purpose),
             {'algorithm': name, 'purpose': purpose})
            for name, spec in keyspec.ALGORITHMS.items()
            for purpose in spec.purposes]


class TestEveryAlgorithm(testscenarios.WithScenarios, base.EngineTestCase):
    """Each algorithm in each purpose it allows."""

    scenarios = _scenarios()

    def setUp(self):
        super().setUp()
        self.spec = keyspec.get_spec(self.algorithm)
        self.key = self.create(self.algorithm, self.purpose,
                               name='key-1', description='first key')
        self.key_id = self.key['key_id']

    def _produce(self) -> dict:
        return _produce(self, self.purpose, self.key_id)

    def test_create_get_list(self):
        key = self.key
        self.assertEqual(self.algorithm, key['algorithm'])
        self.assertEqual(self.purpose, key['purpose'])
        self.assertEqual(PROJECT, key['project_id'])
        self.assertEqual(states.ENABLED, key['state'])
        self.assertEqual(('key-1', 'first key'),
                         (key['name'], key['description']))
        self.assertEqual((1, 1), (key['latest_version'],
                                  key['min_decryption_version']))
        self.assertFalse(key['exportable'])
        self.assertIsNone(key['deletion_date'])
        self.assertTrue(key['created_at'].endswith('Z'))
        datetime.datetime.fromisoformat(key['created_at'][:-1])
        self.assertEqual(key, self.call('key.get', {'key_id': self.key_id}))
        self.assertEqual([key], self.call('key.list', {})['keys'])
        # No material in any metadata.
        self.assertNotIn('material', key)
        self.assertNotIn('wrapped', key)

    def test_default_purpose(self):
        key = self.create(self.algorithm)
        self.assertEqual(self.spec.default_purpose, key['purpose'])

    def test_round_trip(self):
        kid = self.key_id
        if self.purpose == keyspec.PURPOSE_ENCRYPT:
            self._check_encrypt(kid)
        elif self.purpose == keyspec.PURPOSE_SIGN:
            self._check_sign(kid)
        else:
            self._check_mac(kid)

    def _check_encrypt(self, kid):
        out = self.call('encrypt', {'key_id': kid, 'plaintext': PLAINTEXT})
        self.assertEqual((kid, 1), (out['key_id'], out['version']))
        self.assertNotIn(PLAINTEXT, out['ciphertext'])
        again = self.call('encrypt', {'key_id': kid, 'plaintext': PLAINTEXT})
        self.assertNotEqual(out['ciphertext'], again['ciphertext'])
        for ciphertext in (out['ciphertext'], again['ciphertext']):
            plain = self.call('decrypt', {'key_id': kid, 'version': 1,
                                          'ciphertext': ciphertext})
            self.assertEqual({'key_id': kid, 'version': 1,
                              'plaintext': PLAINTEXT}, plain)
        if self.algorithm.endswith('_GCM'):
            ct = self.call('encrypt', {'key_id': kid, 'plaintext': PLAINTEXT,
                                       'aad': b'order-17'})['ciphertext']
            self.assertEqual(PLAINTEXT, self.call('decrypt', {
                'key_id': kid, 'version': 1, 'ciphertext': ct,
                'aad': b'order-17'})['plaintext'])
            for aad in (b'order-18', None):
                self.assertFails(exception.DecryptionFailed, 'decrypt', {
                    'key_id': kid, 'version': 1, 'ciphertext': ct,
                    'aad': aad})
            tampered = ct[:-1] + bytes([ct[-1] ^ 1])
            self.assertFails(exception.DecryptionFailed, 'decrypt', {
                'key_id': kid, 'version': 1, 'ciphertext': tampered,
                'aad': b'order-17'}, code=400)
        else:
            self.assertFails(exception.InvalidInput, 'encrypt', {
                'key_id': kid, 'plaintext': PLAINTEXT, 'aad': b'order-17'})
        if self.algorithm == 'SM2':
            for fmt in ('der', 'c1c3c2', 'c1c2c3', 'C1C3C2'):
                ct = self.call('encrypt', {
                    'key_id': kid, 'plaintext': PLAINTEXT,
                    'ciphertext_format': fmt})['ciphertext']
                self.assertEqual(PLAINTEXT, self.call('decrypt', {
                    'key_id': kid, 'version': 1, 'ciphertext': ct,
                    'ciphertext_format': fmt})['plaintext'])
            self.assertFails(exception.InvalidInput, 'encrypt', {
                'key_id': kid, 'plaintext': b''})
        else:
            self.assertFails(exception.InvalidInput, 'encrypt', {
                'key_id': kid, 'plaintext': PLAINTEXT,
                'ciphertext_format': 'der'})
        if self.algorithm.startswith('RSA_'):
            limit = self.spec.key_size // 8 - 66
            ct = self.call('encrypt', {'key_id': kid,
                                       'plaintext': b'x' * limit})
            self.assertEqual(b'x' * limit, self.call('decrypt', {
                'key_id': kid, 'version': 1,
                'ciphertext': ct['ciphertext']})['plaintext'])
            self.assertFails(exception.InvalidInput, 'encrypt', {
                'key_id': kid, 'plaintext': b'x' * (limit + 1)})
        if not self.spec.asymmetric:
            ct = self.call('encrypt', {'key_id': kid, 'plaintext': b''})
            self.assertEqual(b'', self.call('decrypt', {
                'key_id': kid, 'version': 1,
                'ciphertext': ct['ciphertext']})['plaintext'])
        self._check_datakey(kid)

    def _check_datakey(self, kid):
        for spec, size in engine.DATAKEY_SPECS.items():
            out = self.call('datakey', {'key_id': kid, 'spec': spec})
            self.assertEqual(size, len(out['plaintext']))
            self.assertEqual(out['plaintext'], self.call('decrypt', {
                'key_id': kid, 'version': out['version'],
                'ciphertext': out['ciphertext']})['plaintext'])
        out = self.call('datakey', {'key_id': kid,
                                    'include_plaintext': False})
        self.assertNotIn('plaintext', out)
        self.assertEqual(32, len(self.call('decrypt', {
            'key_id': kid, 'version': 1,
            'ciphertext': out['ciphertext']})['plaintext']))

    def _check_sign(self, kid):
        pem = self.call('key.public', {'key_id': kid})['public_key_pem']
        sig = self.call('sign', {'key_id': kid, 'message': MESSAGE})
        self.assertEqual((kid, 1), (sig['key_id'], sig['version']))
        self.assertTrue(_verify_outside(self.algorithm, pem,
                                        sig['signature'], MESSAGE))
        self.assertEqual({'key_id': kid, 'version': 1, 'valid': True},
                         self.call('verify', {
                             'key_id': kid, 'message': MESSAGE,
                             'signature': sig['signature']}))
        self.assertFalse(self.call('verify', {
            'key_id': kid, 'message': MESSAGE + b'!',
            'signature': sig['signature']})['valid'])
        self.assertFalse(self.call('verify', {
            'key_id': kid, 'message': MESSAGE,
            'signature': b'\x30\x02\x02\x00'})['valid'])
        # A signature over the digest is one over the message, both ways.
        dgst = _digest_for(self.algorithm, pem, MESSAGE)
        by_digest = self.call('sign', {'key_id': kid, 'digest': dgst})
        self.assertTrue(_verify_outside(self.algorithm, pem,
                                        by_digest['signature'], MESSAGE))
        self.assertTrue(self.call('verify', {
            'key_id': kid, 'digest': dgst,
            'signature': sig['signature']})['valid'])
        self.assertTrue(self.call('verify', {
            'key_id': kid, 'message': MESSAGE,
            'signature': by_digest['signature']})['valid'])
        self.assertFails(exception.InvalidInput, 'sign', {
            'key_id': kid, 'digest': dgst[:-1]})
        self.assertFails(exception.InvalidInput, 'sign', {
            'key_id': kid, 'digest': dgst, 'message': MESSAGE})
        self.assertFails(exception.InvalidInput, 'sign', {'key_id': kid})
        self.assertFails(exception.InvalidInput, 'verify', {
            'key_id': kid, 'message': MESSAGE})
        if self.algorithm == 'SM2':
            self._check_sm2_options(kid, pem)
        elif self.algorithm.startswith('RSA_'):
            self._check_rsa_options(kid)
        else:
            for opts in ({'user_id': b'alice'}, {'padding': 'pss'},
                         {'signature_format': 'raw'}, {'hash': 'SHA512'}):
                self.assertFails(exception.InvalidInput, 'sign', {
                    'key_id': kid, 'message': MESSAGE, **opts})

    def _check_sm2_options(self, kid, pem):
        public = sm2.SM2PublicKey.from_pem(pem)
        sig = self.call('sign', {'key_id': kid, 'message': MESSAGE,
                                 'user_id': b'alice@example.com',
                                 'signature_format': 'raw'})['signature']
        self.assertEqual(64, len(sig))
        self.assertTrue(public.verify(sig, MESSAGE, b'alice@example.com',
                                      'raw'))
        self.assertTrue(self.call('verify', {
            'key_id': kid, 'message': MESSAGE, 'signature': sig,
            'user_id': b'alice@example.com',
            'signature_format': 'raw'})['valid'])
        self.assertFalse(self.call('verify', {
            'key_id': kid, 'message': MESSAGE, 'signature': sig,
            'signature_format': 'raw'})['valid'])
        self.assertFails(exception.InvalidInput, 'sign', {
            'key_id': kid, 'digest': public.digest(MESSAGE),
            'user_id': b'alice'})
        self.assertFails(exception.InvalidInput, 'sign', {
            'key_id': kid, 'message': MESSAGE, 'padding': 'pss'})
        self.assertFails(exception.InvalidInput, 'sign', {
            'key_id': kid, 'message': MESSAGE,
            'user_id': b'u' * (engine.MAX_USER_ID + 1)})
        self.call('sign', {'key_id': kid, 'message': MESSAGE,
                           'user_id': b'u' * engine.MAX_USER_ID})

    def _check_rsa_options(self, kid):
        for pad in ('pss', 'pkcs1v15'):
            for hash_name in ('SHA256', 'SHA384', 'SHA512'):
                opts = {'padding': pad, 'hash': hash_name}
                sig = self.call('sign', {'key_id': kid, 'message': MESSAGE,
                                         **opts})['signature']
                self.assertTrue(self.call('verify', {
                    'key_id': kid, 'signature': sig,
                    'digest': _sha(hash_name, MESSAGE), **opts})['valid'])
        sig = self.call('sign', {'key_id': kid, 'message': MESSAGE,
                                 'padding': 'pkcs1v15'})['signature']
        self.assertFalse(self.call('verify', {
            'key_id': kid, 'message': MESSAGE, 'signature': sig,
            'padding': 'pss'})['valid'])
        for opts in ({'padding': 'none'}, {'hash': 'SM3'},
                     {'user_id': b'alice'}, {'signature_format': 'raw'}):
            self.assertFails(exception.InvalidInput, 'sign', {
                'key_id': kid, 'message': MESSAGE, **opts})

    def _check_mac(self, kid):
        out = self.call('hmac', {'key_id': kid, 'data': MESSAGE})
        self.assertEqual((kid, 1), (out['key_id'], out['version']))
        self.assertEqual(32, len(out['mac']))
        self.assertEqual(out['mac'], self.call('hmac', {
            'key_id': kid, 'data': MESSAGE})['mac'])
        self.assertEqual({'key_id': kid, 'version': 1, 'valid': True},
                         self.call('hmac_verify', {
                             'key_id': kid, 'data': MESSAGE,
                             'mac': out['mac']}))
        for data, mac in ((MESSAGE + b'!', out['mac']),
                          (MESSAGE, out['mac'][:-1]), (MESSAGE, b'')):
            self.assertFalse(self.call('hmac_verify', {
                'key_id': kid, 'data': data, 'mac': mac})['valid'])
        self.assertNotEqual(out['mac'], self.call('hmac', {
            'key_id': self.create(self.algorithm)['key_id'],
            'data': MESSAGE})['mac'])

    def test_other_purposes_refused(self):
        refused = set()
        for purpose in OPS_BY_PURPOSE:
            if purpose == self.purpose:
                continue
            for op, args in _use_args(purpose, self.key_id, {
                    'ciphertext': b'c' * 64, 'signature': b's' * 64,
                    'mac': b'm' * 32}):
                exc = self.assertFails(exception.IncompatibleKeyUsage, op,
                                       args, code=400)
                self.assertIn(self.key_id, str(exc))
                refused.add(op)
        self.assertEqual({op for p, ops in OPS_BY_PURPOSE.items()
                          if p != self.purpose for op in ops}, refused)

    def test_public_key(self):
        if not self.spec.asymmetric:
            self.assertFails(exception.InvalidInput, 'key.public',
                             {'key_id': self.key_id})
            return
        out = self.call('key.public', {'key_id': self.key_id})
        self.assertEqual((self.key_id, 1, self.algorithm),
                         (out['key_id'], out['version'], out['algorithm']))
        self.assertTrue(out['public_key_pem'].startswith(
            '-----BEGIN PUBLIC KEY-----'))
        self.assertNotIn('PRIVATE', out['public_key_pem'])
        self.assertEqual(out, self.call('key.public', {'key_id': self.key_id,
                                                       'version': 1}))
        self.assertFails(exception.KeyVersionNotFound, 'key.public',
                         {'key_id': self.key_id, 'version': 2}, code=404)
        self.call('key.rotate', {'key_id': self.key_id})
        second = self.call('key.public', {'key_id': self.key_id})
        self.assertEqual(2, second['version'])
        self.assertNotEqual(out['public_key_pem'], second['public_key_pem'])

    def test_export(self):
        material = self._produce()
        self.assertFails(exception.NotExportable, 'key.export',
                         {'key_id': self.key_id}, code=403)
        key = self.call('key.update', {'key_id': self.key_id,
                                       'exportable': True})
        self.assertTrue(key['exportable'])
        out = self.call('key.export', {'key_id': self.key_id})
        self.assertEqual((self.key_id, 1, self.algorithm),
                         (out['key_id'], out['version'], out['algorithm']))
        handle = self.spec.load(out['material'])
        if self.spec.asymmetric:
            self.assertEqual(self.call('key.public', {
                'key_id': self.key_id})['public_key_pem'],
                out['public_key_pem'])
            self.assertEqual(out['public_key_pem'], handle.public_key_pem())
            # Private keys leave as PKCS#8 DER.
            if self.algorithm == 'SM2':
                sm2.SM2PrivateKey.from_pkcs8_der(out['material'])
            else:
                serialization.load_der_private_key(out['material'],
                                                   password=None)
        else:
            self.assertEqual(self.spec.key_size, len(out['material']))
            self.assertIsNone(out['public_key_pem'])
        # The exported material is the key the vHSM uses.
        if self.purpose == keyspec.PURPOSE_ENCRYPT:
            self.assertEqual(PLAINTEXT, handle.decrypt(material['ciphertext']))
        elif self.purpose == keyspec.PURPOSE_SIGN:
            self.assertTrue(handle.verify(material['signature'], MESSAGE))
        else:
            self.assertEqual(material['mac'], handle.mac(MESSAGE))
        self.call('key.rotate', {'key_id': self.key_id})
        latest = self.call('key.export', {'key_id': self.key_id})
        self.assertEqual(2, latest['version'])
        self.assertNotEqual(out['material'], latest['material'])
        self.assertEqual(out, self.call('key.export', {'key_id': self.key_id,
                                                       'version': 1}))
        self.assertFails(exception.KeyVersionNotFound, 'key.export',
                         {'key_id': self.key_id, 'version': 3})

    def test_rotate_and_min_decryption_version(self):
        old = self._produce()
        key = self.call('key.rotate', {'key_id': self.key_id})
        self.assertEqual((2, 1), (key['latest_version'],
                                  key['min_decryption_version']))
        self.assertEqual(3, self.call('key.rotate', {
            'key_id': self.key_id})['latest_version'])
        new = self._produce()
        kid = self.key_id
        if self.purpose == keyspec.PURPOSE_ENCRYPT:
            old_args = {'key_id': kid, 'version': 1,
                        'ciphertext': old['ciphertext']}
            self.assertEqual(PLAINTEXT,
                             self.call('decrypt', old_args)['plaintext'])
            # A new ciphertext is under version 3; version 1 cannot open
            # it (SM4_CBC and SM4_CTR have no tag and may give garbage).
            try:
                wrong = self.call('decrypt', {
                    'key_id': kid, 'version': 1,
                    'ciphertext': new['ciphertext']})['plaintext']
            except exception.DecryptionFailed:
                wrong = None
            self.assertNotEqual(PLAINTEXT, wrong)
            rewrapped = self.call('rewrap', old_args)
            self.assertEqual(3, rewrapped['version'])
            self.assertEqual(PLAINTEXT, self.call('decrypt', {
                'key_id': kid, 'version': 3,
                'ciphertext': rewrapped['ciphertext']})['plaintext'])
            self.assertEqual(3, self.call('datakey', {
                'key_id': kid})['version'])
            too_old = [('decrypt', old_args), ('rewrap', old_args)]
        elif self.purpose == keyspec.PURPOSE_SIGN:
            old_args = {'key_id': kid, 'version': 1, 'message': MESSAGE,
                        'signature': old['signature']}
            self.assertTrue(self.call('verify', old_args)['valid'])
            # Without a version, verify uses the latest.
            latest = self.call('verify', {'key_id': kid, 'message': MESSAGE,
                                          'signature': old['signature']})
            self.assertEqual((3, False), (latest['version'],
                                          latest['valid']))
            self.assertTrue(self.call('verify', {
                'key_id': kid, 'message': MESSAGE,
                'signature': new['signature']})['valid'])
            too_old = [('verify', old_args)]
        else:
            old_args = {'key_id': kid, 'version': 1, 'data': MESSAGE,
                        'mac': old['mac']}
            self.assertTrue(self.call('hmac_verify', old_args)['valid'])
            self.assertNotEqual(old['mac'], new['mac'])
            self.assertFalse(self.call('hmac_verify', {
                'key_id': kid, 'data': MESSAGE, 'mac': old['mac']})['valid'])
            too_old = [('hmac_verify', old_args)]
        key = self.call('key.update', {'key_id': kid,
                                       'min_decryption_version': 2})
        self.assertEqual(2, key['min_decryption_version'])
        for op, args in too_old:
            exc = self.assertFails(exception.KeyVersionTooOld, op, args,
                                   code=400)
            self.assertIn('minimum decryption version 2', str(exc))
        for bad in (0, 4, -1):
            self.assertFails(exception.InvalidInput, 'key.update', {
                'key_id': kid, 'min_decryption_version': bad})
        self.assertEqual(2, self.call('key.get', {
            'key_id': kid})['min_decryption_version'])
        self.assertFails(exception.KeyVersionNotFound,
                         too_old[0][0], dict(too_old[0][1], version=4))

    def test_disabled_and_pending_deletion_refuse_use(self):
        material = self._produce()
        uses = _use_args(self.purpose, self.key_id, material)
        for op, args in uses:
            self.call(op, args)
        self.call('key.update', {'key_id': self.key_id, 'exportable': True})
        for state in (states.DISABLED, states.PENDING_DELETION):
            if state == states.DISABLED:
                self.call('key.disable', {'key_id': self.key_id})
            else:
                self.call('key.schedule_deletion', {'key_id': self.key_id,
                                                    'pending_days': 7})
            for op, args in uses + [('key.export', {'key_id': self.key_id})]:
                exc = self.assertFails(exception.InvalidKeyState, op, args,
                                       code=409)
                self.assertIn(state, str(exc))
            # Key in a batch: a per-item 409.
            result = self.call('batch', {'items': [
                {'op': op, 'args': args} for op, args in uses]})
            self.assertEqual([409] * len(uses),
                             [r['error']['code'] for r in result['results']])
        self.call('key.cancel_deletion', {'key_id': self.key_id})
        self.call('key.enable', {'key_id': self.key_id})
        for op, args in uses:
            self.call(op, args)


class TestLifecycle(base.EngineTestCase):
    """Key state, update, listing and creation rules (SM4_GCM keys)."""

    def test_ping(self):
        self.assertEqual({'group_id': base.GROUP, 'member_id': 'member-1'},
                         self.call('ping', {}))

    def test_create_is_idempotent(self):
        key_id = str(uuid.uuid4())
        args = {'key_id': key_id, 'algorithm': 'SM4_GCM', 'name': 'payments',
                'description': 'd', 'exportable': False}
        first = self.call('key.create', args)
        ct = self.call('encrypt', {'key_id': key_id,
                                   'plaintext': PLAINTEXT})['ciphertext']
        for _ in range(2):
            self.assertEqual(first, self.call('key.create', args))
        # The key was not replaced: old ciphertexts still decrypt.
        self.assertEqual(PLAINTEXT, self.call('decrypt', {
            'key_id': key_id, 'version': 1, 'ciphertext': ct})['plaintext'])
        self.assertEqual([key_id], [k['key_id'] for k in self.call(
            'key.list', {})['keys']])
        # The same id for another algorithm or project is a conflict that
        # shows nothing of the existing key.
        exc = self.assertFails(exception.Conflict, 'key.create',
                               dict(args, algorithm='AES_256_GCM'), code=409)
        self.assertNotIn('payments', str(exc))
        self.assertFails(exception.Conflict, 'key.create', args,
                         project=OTHER)
        self.assertEqual([], self.call('key.list', {},
                                       project=OTHER)['keys'])

    def test_create_again_for_another_purpose_conflicts(self):
        args = {'key_id': str(uuid.uuid4()), 'algorithm': 'SM2',
                'purpose': 'encrypt'}
        first = self.call('key.create', args)
        self.assertEqual(first, self.call('key.create', args))
        for purpose in ('sign', None):
            self.assertFails(exception.Conflict, 'key.create',
                             dict(args, purpose=purpose), code=409)
        # A default purpose counts as the purpose it stands for.
        args = {'key_id': str(uuid.uuid4()), 'algorithm': 'SM2'}
        first = self.call('key.create', args)
        self.assertEqual(first, self.call('key.create',
                                          dict(args, purpose='sign')))

    def test_create_refusals(self):
        kid = str(uuid.uuid4())
        for algorithm, purpose in (('SM4_GCM', 'sign'), ('HMAC_SM3',
                                                         'encrypt'),
                                   ('EC_P256', 'encrypt'), ('SM2', 'mac'),
                                   ('SM2', 'SIGN'), ('SM4', None),
                                   ('sm4_gcm', None), ('', None)):
            self.assertFails(exception.InvalidInput, 'key.create', {
                'key_id': kid, 'algorithm': algorithm, 'purpose': purpose})
        for bad_id in ('not-a-uuid', kid.upper(), kid.replace('-', ''),
                       '{%s}' % kid[:34]):
            self.assertFails(exception.InvalidInput, 'key.create', {
                'key_id': bad_id, 'algorithm': 'SM4_GCM'})
        self.assertEqual([], self.call('key.list', {})['keys'])

    def test_names_unique_per_project(self):
        self.create('SM4_GCM', name='payments')
        self.assertFails(exception.KeyNameExists, 'key.create', {
            'key_id': str(uuid.uuid4()), 'algorithm': 'SM4_GCM',
            'name': 'payments'}, code=409)
        self.create('SM4_GCM', name='payments', project=OTHER)

    def test_state_table(self):
        """Each event from each state does what KEY_MACHINE says."""
        events = {
            states.ENABLE: ('key.enable', {}),
            states.DISABLE: ('key.disable', {}),
            states.SCHEDULE_DELETION: ('key.schedule_deletion',
                                       {'pending_days': 7}),
            states.CANCEL_DELETION: ('key.cancel_deletion', {}),
            states.ROTATE: ('key.rotate', {}),
            states.CONFIGURE: ('key.update', {'description': 'new'}),
            states.USE: ('encrypt', {'plaintext': b'x'}),
        }
        reach = {
            states.ENABLED: [],
            states.DISABLED: [('key.disable', {})],
            states.PENDING_DELETION: [('key.schedule_deletion', {})],
        }
        checked = 0
        for start in states.KEY_STATES:
            for event, (op, extra) in events.items():
                kid = self.create('SM4_GCM')['key_id']
                for step, step_args in reach[start]:
                    self.call(step, dict(step_args, key_id=kid))
                before = self.call('key.get', {'key_id': kid})
                self.assertEqual(start, before['state'])
                target = states.KEY_MACHINE.transitions.get((start, event))
                if target is None:
                    exc = self.assertFails(exception.InvalidKeyState, op,
                                           dict(extra, key_id=kid),
                                           code=409)
                    self.assertIn(start, str(exc))
                    self.assertEqual(before, self.call('key.get',
                                                       {'key_id': kid}))
                else:
                    self.call(op, dict(extra, key_id=kid))
                    self.assertEqual(target, self.call(
                        'key.get', {'key_id': kid})['state'])
                checked += 1
        self.assertEqual(len(states.KEY_STATES) * len(events), checked)

    def test_schedule_and_cancel_deletion(self):
        kid = self.create('SM4_GCM')['key_id']
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        key = self.call('key.schedule_deletion', {'key_id': kid})
        self.assertEqual(states.PENDING_DELETION, key['state'])
        date = datetime.datetime.fromisoformat(key['deletion_date'][:-1])
        expected = now + datetime.timedelta(days=keys.MAX_PENDING_DAYS)
        self.assertLess(abs(date - expected), datetime.timedelta(minutes=1))
        key = self.call('key.cancel_deletion', {'key_id': kid})
        self.assertEqual((states.DISABLED, None),
                         (key['state'], key['deletion_date']))
        key = self.call('key.schedule_deletion', {'key_id': kid,
                                                  'pending_days': 7})
        date = datetime.datetime.fromisoformat(key['deletion_date'][:-1])
        self.assertLess(abs(date - now - datetime.timedelta(days=7)),
                        datetime.timedelta(minutes=1))
        # Still visible while pending, and listed by state.
        self.assertEqual(key, self.call('key.get', {'key_id': kid}))
        self.assertEqual([key], self.call('key.list', {
            'state': states.PENDING_DELETION})['keys'])

    def test_update(self):
        key = self.create('SM4_GCM', description='old')
        kid = key['key_id']
        self.assertEqual(key, self.call('key.update', {'key_id': kid}))
        key = self.call('key.update', {'key_id': kid, 'description': 'new'})
        self.assertEqual('new', key['description'])
        self.assertEqual('new', self.call('key.get', {
            'key_id': kid})['description'])
        self.assertEqual('', self.call('key.update', {
            'key_id': kid, 'description': ''})['description'])
        # Allowed while disabled, not once deletion is scheduled.
        self.call('key.disable', {'key_id': kid})
        self.assertEqual('disabled', self.call('key.update', {
            'key_id': kid, 'description': 'disabled'})['description'])
        self.call('key.schedule_deletion', {'key_id': kid})
        self.assertFails(exception.InvalidKeyState, 'key.update', {
            'key_id': kid, 'description': 'late'}, code=409)

    def test_exportable_is_one_way(self):
        kid = self.create('SM4_GCM')['key_id']
        # Setting false on a key that never was exportable changes nothing.
        self.assertFalse(self.call('key.update', {
            'key_id': kid, 'exportable': False})['exportable'])
        self.assertFails(exception.NotExportable, 'key.export',
                         {'key_id': kid})
        self.assertTrue(self.call('key.update', {
            'key_id': kid, 'exportable': True})['exportable'])
        self.assertFails(exception.InvalidInput, 'key.update', {
            'key_id': kid, 'exportable': False})
        self.assertTrue(self.call('key.get', {'key_id': kid})['exportable'])
        self.assertTrue(self.call('key.update', {
            'key_id': kid, 'exportable': True})['exportable'])
        self.assertEqual(16, len(self.call('key.export', {
            'key_id': kid})['material']))
        # Created exportable: the same rule.
        kid = self.create('SM4_GCM', exportable=True)['key_id']
        self.assertFails(exception.InvalidInput, 'key.update', {
            'key_id': kid, 'exportable': False})

    def test_list_pages_and_filters(self):
        ids = sorted(self.create('SM4_GCM')['key_id'] for _ in range(5))
        self.create('SM4_GCM', project=OTHER)
        self.call('key.disable', {'key_id': ids[1]})
        listed = self.call('key.list', {})['keys']
        self.assertEqual(ids, [k['key_id'] for k in listed])
        page = self.call('key.list', {'limit': 2})['keys']
        self.assertEqual(ids[:2], [k['key_id'] for k in page])
        page = self.call('key.list', {'limit': 2, 'marker': ids[1]})['keys']
        self.assertEqual(ids[2:4], [k['key_id'] for k in page])
        self.assertEqual([], self.call('key.list', {
            'marker': ids[-1]})['keys'])
        self.assertEqual([ids[1]], [k['key_id'] for k in self.call(
            'key.list', {'state': states.DISABLED})['keys']])
        self.assertEqual(4, len(self.call('key.list', {
            'state': states.ENABLED})['keys']))
        self.assertFails(exception.InvalidInput, 'key.list', {
            'marker': str(uuid.uuid4())})

    def test_missing_key(self):
        missing = str(uuid.uuid4())
        for op in ('key.get', 'key.rotate', 'key.disable', 'key.public',
                   'encrypt', 'hmac'):
            self.assertFails(exception.KeyNotFound, op,
                             {'key_id': missing, 'plaintext': b'x',
                              'data': b'x'}, code=404)
        # A key id that is no UUID is simply not found.
        for bad in ('x', 'k' * 64, missing.upper()):
            self.assertFails(exception.KeyNotFound, 'key.get',
                             {'key_id': bad})

    def test_hash(self):
        for name in engine.HASH_ALGORITHMS:
            out = self.call('hash', {'algorithm': name, 'data': MESSAGE})
            self.assertEqual(name, out['algorithm'])
            if name == 'SM3':
                self.assertEqual(sm2.sm3(MESSAGE), out['digest'])
            else:
                self.assertEqual(_sha(name, MESSAGE), out['digest'])
        out = self.call('hash', {'data': b'abc'})
        self.assertEqual(('SM3', '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875c'
                                 'f2f7a2297da02b8f4ba8e0'),
                         (out['algorithm'], out['digest'].hex()))

    def test_random(self):
        for length in (1, 32, engine.MAX_RANDOM):
            self.assertEqual(length, len(self.call('random', {
                'length': length})['random']))
        self.assertNotEqual(self.call('random', {'length': 32}),
                            self.call('random', {'length': 32}))

    def test_purge_due(self):
        ks = self.keystore
        due = self.create('SM4_GCM', exportable=True)['key_id']
        not_yet = self.create('SM4_GCM')['key_id']
        disabled = self.create('SM4_GCM')['key_id']
        enabled = self.create('SM4_GCM')['key_id']
        other = self.create('SM4_GCM', project=OTHER)['key_id']
        ct = self.call('encrypt', {'key_id': due, 'plaintext': b'x'})
        for kid, project in ((due, PROJECT), (not_yet, PROJECT),
                             (other, OTHER)):
            self.call('key.schedule_deletion', {'key_id': kid,
                                                'pending_days': 7},
                      project=project)
        self.call('key.disable', {'key_id': disabled})
        past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(
            seconds=5)
        for kid in (due, other):
            ks.update_key(base.GROUP, kid, {'deletion_date': past})
        # A deletion date on a key that is not pending deletion does not
        # destroy it.
        ks.update_key(base.GROUP, disabled, {'deletion_date': past})
        purged = self.engine.keys.purge_due()
        self.assertEqual(sorted([due, other]), sorted(purged))
        for kid, project in ((due, PROJECT), (other, OTHER)):
            self.assertFails(exception.KeyNotFound, 'key.get',
                             {'key_id': kid}, project=project)
            self.assertRaises(exception.KeyVersionNotFound,
                              ks.get_version, kid, 1)
        self.assertFails(exception.KeyNotFound, 'decrypt', {
            'key_id': due, 'version': 1, 'ciphertext': ct['ciphertext']})
        self.assertEqual({not_yet: states.PENDING_DELETION,
                          disabled: states.DISABLED,
                          enabled: states.ENABLED},
                         {k['key_id']: k['state'] for k in self.call(
                             'key.list', {})['keys']})
        self.assertEqual([], self.engine.keys.purge_due())

    def test_purger_thread(self):
        kid = self.create('SM4_GCM')['key_id']
        self.call('key.schedule_deletion', {'key_id': kid})
        self.keystore.update_key(base.GROUP, kid, {
            'deletion_date': datetime.datetime(2000, 1, 1)})
        self.engine.start_purger(0.02)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not self.call('key.list', {})['keys']:
                break
            time.sleep(0.02)
        self.assertEqual([], self.call('key.list', {})['keys'])


class TestProjectIsolation(base.EngineTestCase):
    """Another project's key answers exactly like a missing key."""

    def setUp(self):
        super().setUp()
        self.keys = {}
        self.material = {}
        for algorithm, purpose in (('SM4_GCM', 'encrypt'), ('SM2', 'sign'),
                                   ('HMAC_SM3', 'mac')):
            kid = self.create(algorithm, purpose, exportable=True)['key_id']
            self.keys[purpose] = kid
            self.material[purpose] = _produce(self, purpose, kid)
        self.own = self.create('SM4_GCM', project=OTHER)

    def _all_key_ops(self):
        for purpose, kid in self.keys.items():
            yield from _use_args(purpose, kid, self.material[purpose])
            for op, extra in (('key.get', {}), ('key.update',
                                                {'description': 'x'}),
                              ('key.enable', {}), ('key.disable', {}),
                              ('key.rotate', {}),
                              ('key.schedule_deletion', {}),
                              ('key.cancel_deletion', {}),
                              ('key.public', {}), ('key.export', {})):
                yield op, dict(extra, key_id=kid)

    def test_other_project_gets_key_not_found_everywhere(self):
        missing = str(uuid.uuid4())
        ops = list(self._all_key_ops())
        for op, args in ops:
            exc = self.assertFails(exception.KeyNotFound, op, args,
                                   project=OTHER, code=404)
            nothing = self.assertFails(exception.KeyNotFound, op,
                                       dict(args, key_id=missing),
                                       project=OTHER)
            self.assertEqual(
                nothing.to_dict(),
                dict(exc.to_dict(), message=exc.message.replace(
                    args['key_id'], missing)))
        result = self.call('batch', {'items': [
            {'op': op, 'args': args} for op, args in ops
            if not op.startswith('key.')]}, project=OTHER)
        self.assertEqual({404}, {r['error']['code']
                                 for r in result['results']})
        # Nothing changed for the owner.
        for kid in self.keys.values():
            key = self.call('key.get', {'key_id': kid})
            self.assertEqual((states.ENABLED, 1, None),
                             (key['state'], key['latest_version'],
                              key['description']))

    def test_list_shows_own_keys_only(self):
        self.assertEqual(sorted(self.keys.values()),
                         [k['key_id'] for k in self.call(
                             'key.list', {})['keys']])
        self.assertEqual([self.own['key_id']],
                         [k['key_id'] for k in self.call(
                             'key.list', {}, project=OTHER)['keys']])
        self.assertEqual([], self.call('key.list', {},
                                       project='project-c')['keys'])
        # Another project's key is no marker for this one.
        self.assertFails(exception.InvalidInput, 'key.list',
                         {'marker': self.own['key_id']})

    def test_project_required(self):
        for project in ('', None, 7, b'project-a'):
            self.assertRaises(exception.Unauthorized, self.engine.dispatch,
                              'key.list', project, {})

    def test_ping_needs_no_project(self):
        # VHSMClient.ping_all (the service's /healthz) sends project ''.
        self.assertEqual('member-1', self.engine.dispatch(
            'ping', '', {})['member_id'])
        for project in (None, 7, b'project-a'):
            self.assertRaises(exception.Unauthorized, self.engine.dispatch,
                              'ping', project, {})


class TestBadInput(base.EngineTestCase):
    """Malformed requests raise InvalidInput, never anything else."""

    def setUp(self):
        super().setUp()
        self.enc = self.create('SM4_GCM')['key_id']
        self.sm2 = self.create('SM2', 'sign')['key_id']
        self.sm2_enc = self.create('SM2', 'encrypt')['key_id']
        self.rsa = self.create('RSA_2048', 'sign')['key_id']
        self.ec = self.create('EC_P256')['key_id']
        self.mac = self.create('HMAC_SM3')['key_id']
        self.life = self.create('SM4_GCM', exportable=True)['key_id']
        self.ct = self.call('encrypt', {'key_id': self.enc,
                                        'plaintext': b'p'})['ciphertext']
        self.sm2_ct = self.call('encrypt', {
            'key_id': self.sm2_enc, 'plaintext': b'p'})['ciphertext']

    def _valid(self) -> list[tuple[str, dict]]:
        """A well-formed request for every operation."""
        sig = b'\x30\x06\x02\x01\x01\x02\x01\x01'
        return [
            ('ping', {}),
            ('hash', {'algorithm': 'SHA256', 'data': b'd'}),
            ('random', {'length': 16}),
            ('encrypt', {'key_id': self.enc, 'plaintext': b'p',
                         'aad': b'a'}),
            ('encrypt', {'key_id': self.sm2_enc, 'plaintext': b'p',
                         'ciphertext_format': 'der'}),
            ('decrypt', {'key_id': self.enc, 'version': 1,
                         'ciphertext': self.ct}),
            ('decrypt', {'key_id': self.sm2_enc, 'version': 1,
                         'ciphertext': self.sm2_ct,
                         'ciphertext_format': 'der'}),
            ('rewrap', {'key_id': self.enc, 'version': 1,
                        'ciphertext': self.ct}),
            ('datakey', {'key_id': self.enc, 'spec': 'SM4_128',
                         'include_plaintext': True, 'aad': b'a'}),
            ('sign', {'key_id': self.sm2, 'message': b'm',
                      'user_id': b'u', 'signature_format': 'raw'}),
            ('sign', {'key_id': self.rsa, 'digest': b'd' * 32,
                      'padding': 'pss', 'hash': 'SHA256'}),
            ('sign', {'key_id': self.ec, 'message': b'm'}),
            ('verify', {'key_id': self.sm2, 'message': b'm',
                        'signature': sig, 'version': 1}),
            ('verify', {'key_id': self.rsa, 'message': b'm',
                        'signature': sig, 'padding': 'pkcs1v15'}),
            ('hmac', {'key_id': self.mac, 'data': b'd'}),
            ('hmac_verify', {'key_id': self.mac, 'data': b'd',
                             'mac': b'm' * 32, 'version': 1}),
            ('batch', {'items': [{'op': 'hash', 'args': {'data': b'x'}}]}),
            ('key.create', {'key_id': str(uuid.UUID(int=7)),
                            'algorithm': 'SM4_GCM', 'purpose': 'encrypt',
                            'name': 'n', 'description': 'd',
                            'exportable': False}),
            ('key.list', {'limit': 10, 'marker': self.enc,
                          'state': 'ENABLED'}),
            ('key.get', {'key_id': self.life}),
            ('key.public', {'key_id': self.sm2, 'version': 1}),
            ('key.export', {'key_id': self.life, 'version': 1}),
            ('key.update', {'key_id': self.life, 'description': 'd',
                            'min_decryption_version': 1,
                            'exportable': True}),
            ('key.rotate', {'key_id': self.life}),
            ('key.disable', {'key_id': self.life}),
            ('key.enable', {'key_id': self.life}),
            ('key.schedule_deletion', {'key_id': self.life,
                                       'pending_days': 7}),
            ('key.cancel_deletion', {'key_id': self.life}),
        ]

    def test_valid_requests_pass(self):
        for op, args in self._valid():
            self.assertIsInstance(self.call(op, args), dict, op)
        self.assertEqual(self.engine.operations,
                         {op for op, _ in self._valid()})

    def test_unknown_or_malformed_operation(self):
        for op in ('nope', '', 'KEY.GET', 'Encrypt', 'key.delete',
                   'key.purge', 'x' * 10000, None, 7, b'encrypt',
                   ['encrypt'], {'op': 'encrypt'}, ('encrypt',)):
            exc = self.assertRaises(exception.InvalidInput,
                                    self.engine.dispatch, op, PROJECT, {})
            self.assertLess(len(exc.message), 200)

    def test_args_must_be_a_map(self):
        for op, _ in self._valid():
            for args in (None, [], ['key_id'], b'args', 'args', 1, True):
                self.assertRaises(exception.InvalidInput,
                                  self.engine.dispatch, op, PROJECT, args)

    def test_required_arguments(self):
        required = {
            'hash': ('data',), 'random': ('length',),
            'encrypt': ('key_id', 'plaintext'),
            'decrypt': ('key_id', 'version', 'ciphertext'),
            'rewrap': ('key_id', 'version', 'ciphertext'),
            'datakey': ('key_id',), 'sign': ('key_id',),
            'verify': ('key_id', 'signature'), 'hmac': ('key_id', 'data'),
            'hmac_verify': ('key_id', 'data', 'mac'), 'batch': ('items',),
            'key.create': ('key_id', 'algorithm'), 'key.get': ('key_id',),
            'key.public': ('key_id',), 'key.export': ('key_id',),
            'key.update': ('key_id',), 'key.rotate': ('key_id',),
            'key.disable': ('key_id',), 'key.enable': ('key_id',),
            'key.schedule_deletion': ('key_id',),
            'key.cancel_deletion': ('key_id',),
        }
        checked = set()
        for op, args in self._valid():
            for name in required.get(op, ()):
                for value in ('missing', None):
                    bad = dict(args)
                    if value == 'missing':
                        del bad[name]
                    else:
                        bad[name] = None
                    exc = self.assertFails(exception.InvalidInput, op, bad,
                                           code=400)
                    self.assertIn(name, str(exc))
                checked.add(op)
        self.assertEqual(set(required), checked)
        # sign and verify need a message or a digest.
        for op, args in self._valid():
            if op in ('sign', 'verify'):
                bad = {k: v for k, v in args.items()
                       if k not in ('message', 'digest')}
                self.assertFails(exception.InvalidInput, op, bad)
                self.assertFails(exception.InvalidInput, op, dict(
                    args, message=b'm', digest=b'd' * 32))

    def test_wrong_types(self):
        bytes_args = ('plaintext', 'ciphertext', 'aad', 'message', 'digest',
                      'signature', 'data', 'mac', 'user_id')
        str_args = ('key_id', 'algorithm', 'purpose', 'name', 'description',
                    'marker', 'state', 'spec', 'ciphertext_format',
                    'signature_format', 'padding', 'hash')
        int_args = ('version', 'length', 'limit', 'min_decryption_version',
                    'pending_days')
        bool_args = ('exportable', 'include_plaintext')
        wrong = {
            bytes: ('text', 1, 1.0, True, [], {}),
            str: (b'text', 1, 1.0, True, [], {}),
            int: (True, False, 1.0, '1', b'1', [], {}),
            bool: (1, 0, 'true', b'', [], {}),
        }
        count = 0
        for op, args in self._valid():
            for name in args:
                kind = (bytes if name in bytes_args else
                        str if name in str_args else
                        int if name in int_args else
                        bool if name in bool_args else None)
                if kind is None:
                    continue
                for value in wrong[kind]:
                    exc = self.assertFails(
                        exception.InvalidInput, op, dict(args, **{
                            name: value}), code=400)
                    self.assertIn(name, str(exc))
                    count += 1
        self.assertGreater(count, 300)

    def test_out_of_range(self):
        cases = [
            ('random', {'length': 0}), ('random', {'length': -1}),
            ('random', {'length': engine.MAX_RANDOM + 1}),
            ('random', {'length': 2 ** 64}),
            ('key.list', {'limit': 0}), ('key.list', {'limit': 1001}),
            ('key.schedule_deletion', {'key_id': self.life,
                                       'pending_days': 6}),
            ('key.schedule_deletion', {'key_id': self.life,
                                       'pending_days': 31}),
            ('key.schedule_deletion', {'key_id': self.life,
                                       'pending_days': 0}),
            ('decrypt', {'key_id': self.enc, 'version': 0,
                         'ciphertext': self.ct}),
            ('decrypt', {'key_id': self.enc, 'version': -1,
                         'ciphertext': self.ct}),
            ('verify', {'key_id': self.sm2, 'version': 0, 'message': b'm',
                        'signature': b's'}),
            ('hmac_verify', {'key_id': self.mac, 'version': 0,
                             'data': b'd', 'mac': b'm'}),
            ('key.public', {'key_id': self.sm2, 'version': 0}),
            ('key.export', {'key_id': self.life, 'version': -5}),
            ('key.update', {'key_id': self.life,
                            'min_decryption_version': 0}),
            ('key.update', {'key_id': self.life,
                            'min_decryption_version': 2}),
            ('key.update', {'key_id': self.life,
                            'min_decryption_version': 2 ** 63}),
        ]
        for op, args in cases:
            self.assertFails(exception.InvalidInput, op, args, code=400)
        # A version above the latest is a missing version, however large.
        for version in (2, 2 ** 63, 2 ** 64):
            self.assertFails(exception.KeyVersionNotFound, 'decrypt', {
                'key_id': self.enc, 'version': version,
                'ciphertext': self.ct}, code=404)

    def test_bad_choices(self):
        cases = [
            ('hash', {'algorithm': 'MD5', 'data': b'd'}),
            ('hash', {'algorithm': 'sha256', 'data': b'd'}),
            ('key.list', {'state': 'DELETED'}),
            ('key.list', {'state': 'enabled'}),
            ('datakey', {'key_id': self.enc, 'spec': 'DES'}),
            ('datakey', {'key_id': self.enc, 'spec': 'AES_512'}),
            ('encrypt', {'key_id': self.sm2_enc, 'plaintext': b'p',
                         'ciphertext_format': 'pem'}),
            ('decrypt', {'key_id': self.sm2_enc, 'version': 1,
                         'ciphertext': self.sm2_ct,
                         'ciphertext_format': 'c2c1c3'}),
            ('sign', {'key_id': self.sm2, 'message': b'm',
                      'signature_format': 'pem'}),
            ('sign', {'key_id': self.sm2, 'message': b'm',
                      'hash': 'SHA256'}),
            ('sign', {'key_id': self.rsa, 'message': b'm',
                      'padding': 'oaep'}),
            ('sign', {'key_id': self.rsa, 'message': b'm', 'hash': 'MD5'}),
            ('sign', {'key_id': self.ec, 'message': b'm', 'hash': 'SHA1'}),
            ('key.create', {'key_id': str(uuid.uuid4()),
                            'algorithm': 'SM4_GCM', 'purpose': 'wrap'}),
        ]
        for op, args in cases:
            self.assertFails(exception.InvalidInput, op, args, code=400)

    def test_oversize(self):
        big = b'\x00' * (engine.MAX_DATA + 1)
        cases = [
            ('encrypt', {'key_id': self.enc, 'plaintext': big}),
            ('encrypt', {'key_id': self.enc, 'plaintext': b'p',
                         'aad': big}),
            ('hash', {'data': big}),
            ('hmac', {'key_id': self.mac, 'data': big}),
            ('sign', {'key_id': self.sm2, 'message': big}),
            ('hmac_verify', {'key_id': self.mac, 'data': b'd',
                             'mac': b'm' * 1025}),
            ('sign', {'key_id': self.sm2, 'message': b'm',
                      'user_id': b'u' * (engine.MAX_USER_ID + 1)}),
            ('key.get', {'key_id': 'k' * 65}),
            ('key.create', {'key_id': str(uuid.uuid4()) + 'x',
                            'algorithm': 'SM4_GCM'}),
            ('key.create', {'key_id': str(uuid.uuid4()),
                            'algorithm': 'A' * 33}),
            ('key.create', {'key_id': str(uuid.uuid4()),
                            'algorithm': 'SM4_GCM',
                            'name': 'n' * (keys.MAX_NAME_LENGTH + 1)}),
            ('key.create', {'key_id': str(uuid.uuid4()),
                            'algorithm': 'SM4_GCM',
                            'description': 'd' * (
                                keys.MAX_DESCRIPTION_LENGTH + 1)}),
            ('key.update', {'key_id': self.life,
                            'description': 'd' * (
                                keys.MAX_DESCRIPTION_LENGTH + 1)}),
            ('key.list', {'marker': 'm' * 37}),
            ('batch', {'items': [None] * (engine.MAX_BATCH + 1)}),
        ]
        for op, args in cases:
            exc = self.assertFails(exception.InvalidInput, op, args,
                                   code=400)
            # Neither the value nor a part of it is echoed back.
            self.assertLess(len(exc.message), 200)
        del big
        # The limits themselves are allowed.
        self.call('key.create', {
            'key_id': str(uuid.uuid4()), 'algorithm': 'SM4_GCM',
            'name': 'n' * keys.MAX_NAME_LENGTH,
            'description': 'd' * keys.MAX_DESCRIPTION_LENGTH})

    def test_any_value_anywhere(self):
        """Whatever lands in any argument, the answer is a 4xx or success.

        Lifecycle operations go last and use their own key, so the keys
        the crypto operations use stay enabled.
        """
        weird = (None, True, 0, -1, 2 ** 64, 1.5, float('nan'), '',
                 'x' * 300, b'', b'\xff' * 300, [b'x'], {'op': 'hash'})
        valid = self._valid()
        valid.sort(key=lambda item: item[0].startswith('key.'))
        calls = 0
        for op, args in valid:
            # Its own arguments, and one that belongs to other operations.
            for name in set(args) | {'key_id', 'version', 'items'}:
                for value in weird:
                    try:
                        result = self.call(op, dict(args, **{name: value}))
                    except exception.CryptoCloudException as exc:
                        self.assertLess(exc.code, 500, (op, name, value,
                                                        exc))
                    else:
                        self.assertIsInstance(result, dict)
                    calls += 1
        self.assertGreater(calls, 1000)

    def test_batch_items_of_any_shape(self):
        items = [None, 1, 'hash', b'hash', [], {}, {'op': 'hash'},
                 {'args': {}}, {'op': 'hash', 'args': None},
                 {'op': 'hash', 'args': []}, {'op': ['hash'], 'args': {}},
                 {'op': {'hash': 1}, 'args': {}}, {'op': 7, 'args': {}},
                 {'op': None, 'args': {}}, {'op': 'hash', 'args': {}}]
        results = self.call('batch', {'items': items})['results']
        self.assertEqual(len(items), len(results))
        for item, result in zip(items, results, strict=True):
            self.assertFalse(result['ok'], item)
            self.assertEqual(400, result['error']['code'], item)
            self.assertEqual('InvalidInput', result['error']['type'])


class TestBatch(base.EngineTestCase):

    batch_threads = 4

    def setUp(self):
        super().setUp()
        self.enc = self.create('SM4_GCM')['key_id']
        self.sig = self.create('SM2')['key_id']
        self.mac = self.create('HMAC_SM3')['key_id']

    def test_empty(self):
        self.assertEqual({'results': []}, self.call('batch', {'items': []}))

    def test_items_must_be_a_list(self):
        for items in ({}, 'x', b'x', 3, {'op': 'hash'}):
            self.assertFails(exception.InvalidInput, 'batch',
                             {'items': items})

    def test_order_kept_with_mixed_items(self):
        missing = str(uuid.uuid4())
        disabled = self.create('SM4_GCM')['key_id']
        self.call('key.disable', {'key_id': disabled})
        items, expect = [], []
        for i in range(40):
            kind = i % 8
            data = b'item-%d' % i
            if kind == 0:
                items.append({'op': 'encrypt', 'args': {
                    'key_id': self.enc, 'plaintext': data}})
                expect.append(None)
            elif kind == 1:
                items.append({'op': 'hash', 'args': {'data': data}})
                expect.append(None)
            elif kind == 2:
                items.append({'op': 'encrypt', 'args': {
                    'key_id': missing, 'plaintext': data}})
                expect.append(('KeyNotFound', 404))
            elif kind == 3:
                items.append({'op': ('key.create', 'batch', 'ping',
                                     'key.export', 'key.disable')[i % 5],
                              'args': {'key_id': self.enc}})
                expect.append(('InvalidInput', 400))
            elif kind == 4:
                items.append({'op': 'sign', 'args': {
                    'key_id': self.sig, 'message': data}})
                expect.append(None)
            elif kind == 5:
                items.append({'op': 'sign', 'args': {
                    'key_id': self.enc, 'message': data}})
                expect.append(('IncompatibleKeyUsage', 400))
            elif kind == 6:
                items.append({'op': 'hmac', 'args': {
                    'key_id': disabled, 'data': data}})
                expect.append(('InvalidKeyState', 409))
            else:
                items.append({'op': 'hmac', 'args': {
                    'key_id': self.mac, 'data': data}})
                expect.append(None)
        results = self.call('batch', {'items': items})['results']
        self.assertEqual(len(items), len(results))
        for i, (item, want, got) in enumerate(
                zip(items, expect, results, strict=True)):
            if want is None:
                self.assertTrue(got['ok'], (i, got))
                self.assertNotIn('error', got)
            else:
                self.assertFalse(got['ok'], i)
                self.assertNotIn('result', got)
                self.assertEqual(want, (got['error']['type'],
                                        got['error']['code']), i)
                self.assertIsInstance(got['error']['message'], str)
            data = b'item-%d' % i
            if want is None and item['op'] == 'hash':
                self.assertEqual(sm2.sm3(data), got['result']['digest'])
            elif want is None and item['op'] == 'hmac':
                self.assertEqual(self.call('hmac', {
                    'key_id': self.mac, 'data': data})['mac'],
                    got['result']['mac'])
            elif want is None and item['op'] == 'sign':
                self.assertTrue(self.call('verify', {
                    'key_id': self.sig, 'message': data,
                    'signature': got['result']['signature']})['valid'])
            elif want is None:
                self.assertEqual(data, self.call('decrypt', {
                    'key_id': self.enc, 'version': 1,
                    'ciphertext': got['result']['ciphertext']})['plaintext'])

    def test_large_batch_in_order(self):
        items = [{'op': 'encrypt', 'args': {'key_id': self.enc,
                                            'plaintext': b'%d' % i}}
                 for i in range(501)]
        results = self.call('batch', {'items': items})['results']
        decrypted = self.call('batch', {'items': [
            {'op': 'decrypt', 'args': {'key_id': self.enc, 'version': 1,
                                       'ciphertext': r['result'][
                                           'ciphertext']}}
            for r in results]})['results']
        self.assertEqual([b'%d' % i for i in range(501)],
                         [r['result']['plaintext'] for r in decrypted])

    def test_all_crypto_operations(self):
        ct = self.call('encrypt', {'key_id': self.enc,
                                   'plaintext': b'p'})['ciphertext']
        sig = self.call('sign', {'key_id': self.sig,
                                 'message': b'm'})['signature']
        mac = self.call('hmac', {'key_id': self.mac, 'data': b'd'})['mac']
        items = [
            {'op': 'encrypt', 'args': {'key_id': self.enc,
                                       'plaintext': b'p'}},
            {'op': 'decrypt', 'args': {'key_id': self.enc, 'version': 1,
                                       'ciphertext': ct}},
            {'op': 'rewrap', 'args': {'key_id': self.enc, 'version': 1,
                                      'ciphertext': ct}},
            {'op': 'datakey', 'args': {'key_id': self.enc}},
            {'op': 'sign', 'args': {'key_id': self.sig, 'message': b'm'}},
            {'op': 'verify', 'args': {'key_id': self.sig, 'message': b'm',
                                      'signature': sig}},
            {'op': 'hmac', 'args': {'key_id': self.mac, 'data': b'd'}},
            {'op': 'hmac_verify', 'args': {'key_id': self.mac, 'data': b'd',
                                           'mac': mac}},
            {'op': 'hash', 'args': {'data': b'd'}},
            {'op': 'random', 'args': {'length': 8}},
        ]
        results = self.call('batch', {'items': items})['results']
        self.assertEqual([True] * len(items), [r['ok'] for r in results])
        self.assertEqual(b'p', results[1]['result']['plaintext'])
        self.assertTrue(results[5]['result']['valid'])
        self.assertTrue(results[7]['result']['valid'])
        self.assertEqual(8, len(results[9]['result']['random']))
        # Every operation a batch may hold is in this one.
        self.assertEqual(
            {op for op in self.engine.operations
             if not op.startswith('key.') and op not in ('ping', 'batch')},
            {item['op'] for item in items})


class TestGroupMembers(base.EngineTestCase):
    """Two members on one keystore, as in a vHSM group."""

    def test_second_member_serves_keys_of_the_first(self):
        member2 = self.new_engine(self.new_keystore(), member_id='member-2')
        self.assertEqual('member-2', self.call('ping', {},
                                               eng=member2)['member_id'])
        for algorithm, purpose in (('SM4_GCM', 'encrypt'),
                                   ('SM2', 'encrypt'), ('SM2', 'sign'),
                                   ('HMAC_SHA256', 'mac'),
                                   ('RSA_2048', 'sign')):
            kid = self.create(algorithm, purpose)['key_id']
            uses = _use_args(purpose, kid, _produce(self, purpose, kid))
            for op, args in uses:
                out = self.call(op, args, eng=member2)
                self.assertNotEqual(False, out.get('valid'))
                if op == 'decrypt':
                    self.assertEqual(PLAINTEXT, out['plaintext'])
        # And the other way round, after a rotation on member 2.
        kid = self.create('SM4_GCM', eng=member2)['key_id']
        self.call('key.rotate', {'key_id': kid}, eng=member2)
        ct = self.call('encrypt', {'key_id': kid, 'plaintext': PLAINTEXT},
                       eng=member2)
        self.assertEqual(2, ct['version'])
        self.assertEqual(PLAINTEXT, self.call('decrypt', {
            'key_id': kid, 'version': 2,
            'ciphertext': ct['ciphertext']})['plaintext'])

    def test_disable_seen_at_once_with_ttl_zero(self):
        member2 = self.new_engine(self.new_keystore(), cache_ttl=0)
        kid = self.create('SM4_GCM')['key_id']
        args = {'key_id': kid, 'plaintext': b'x'}
        self.call('encrypt', args, eng=member2)
        self.call('key.disable', {'key_id': kid})
        self.assertFails(exception.InvalidKeyState, 'encrypt', args,
                         eng=member2)
        self.call('key.enable', {'key_id': kid})
        self.call('encrypt', args, eng=member2)

    def test_disable_seen_within_ttl(self):
        member2 = self.new_engine(self.new_keystore(), cache_ttl=5.0)
        clock = base.FakeClock()
        # The record cache is the only thing the clock drives.
        member2.keys._records = keycache.RecordCache(5.0, clock=clock)
        kid = self.create('SM4_GCM')['key_id']
        args = {'key_id': kid, 'plaintext': b'x'}
        self.call('encrypt', args, eng=member2)
        self.call('key.disable', {'key_id': kid})
        # The member that disabled it refuses at once...
        self.assertFails(exception.InvalidKeyState, 'encrypt', args)
        # ...the other may go on for at most key_cache_ttl.
        clock.advance(4.9)
        self.call('encrypt', args, eng=member2)
        clock.advance(0.2)
        self.assertFails(exception.InvalidKeyState, 'encrypt', args,
                         eng=member2)
        # Lifecycle operations and get always read the keystore.
        self.assertEqual(states.DISABLED, self.call(
            'key.get', {'key_id': kid}, eng=member2)['state'])

    def test_enable_and_rotation_seen_at_once(self):
        member2 = self.new_engine(self.new_keystore(), cache_ttl=5.0)
        clock = base.FakeClock()
        member2.keys._records = keycache.RecordCache(5.0, clock=clock)
        kid = self.create('SM4_GCM')['key_id']
        self.call('key.disable', {'key_id': kid})
        args = {'key_id': kid, 'plaintext': b'x'}
        self.assertFails(exception.InvalidKeyState, 'encrypt', args,
                         eng=member2)
        # Changes that allow more need no wait for the cache to expire.
        self.call('key.enable', {'key_id': kid})
        self.assertEqual(1, self.call('encrypt', args,
                                      eng=member2)['version'])
        self.call('key.rotate', {'key_id': kid})
        ct = self.call('encrypt', args)
        self.assertEqual(2, ct['version'])
        self.assertEqual(b'x', self.call('decrypt', {
            'key_id': kid, 'version': 2, 'ciphertext': ct['ciphertext']},
            eng=member2)['plaintext'])
        self.assertFails(exception.KeyVersionNotFound, 'decrypt', {
            'key_id': kid, 'version': 3, 'ciphertext': ct['ciphertext']},
            eng=member2)

    def test_disable_seen_within_real_short_ttl(self):
        member2 = self.new_engine(self.new_keystore(), cache_ttl=0.2)
        kid = self.create('SM4_GCM')['key_id']
        args = {'key_id': kid, 'plaintext': b'x'}
        self.call('encrypt', args, eng=member2)
        self.call('key.schedule_deletion', {'key_id': kid})
        time.sleep(0.3)
        self.assertFails(exception.InvalidKeyState, 'encrypt', args,
                         eng=member2)

    def test_purge_by_one_member_seen_by_the_other(self):
        member2 = self.new_engine(self.new_keystore(), cache_ttl=0)
        kid = self.create('SM4_GCM')['key_id']
        ct = self.call('encrypt', {'key_id': kid, 'plaintext': b'x'},
                       eng=member2)
        self.call('key.schedule_deletion', {'key_id': kid})
        self.keystore.update_key(base.GROUP, kid, {
            'deletion_date': datetime.datetime(2000, 1, 1)})
        self.assertEqual([kid], self.engine.keys.purge_due())
        self.assertEqual([], member2.keys.purge_due())
        self.assertFails(exception.KeyNotFound, 'decrypt', {
            'key_id': kid, 'version': 1, 'ciphertext': ct['ciphertext']},
            eng=member2)

    def test_rotations_on_two_members_follow_each_other(self):
        member2 = self.new_engine(self.new_keystore(), cache_ttl=0)
        kid = self.create('SM4_GCM')['key_id']
        results = []
        for eng in (self.engine, member2, self.engine):
            results.append(self.call('key.rotate', {'key_id': kid},
                                     eng=eng)['latest_version'])
        self.assertEqual([2, 3, 4], results)
