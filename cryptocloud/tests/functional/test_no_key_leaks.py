"""No key material in the keystore tables or in any log line.

The test drives every key type through the real processes with debug
logging on, then collects every secret it can know: the master key, the
group secret, the domain key (unsealed here with the master key), the
material of exportable keys (exported, so the test learns it), data-key
plaintexts, tenant plaintexts and credential secrets.  None of them may
appear, in raw, hex or base64 form, in any keystore row or log file.
"""

import base64

import sqlalchemy as sa
import testtools
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa

from cryptocloud.common import secretfile
from cryptocloud.crypto import wrapping
from cryptocloud.tests import db as test_db
from cryptocloud.tests.functional import dataplane
from cryptocloud.tests.functional.dataplane import b64
from cryptocloud.tests.functional.dataplane import unb64

ALGORITHMS = ('SM4_GCM', 'SM4_CBC', 'SM4_CTR', 'AES_256_GCM', 'HMAC_SM3',
              'HMAC_SHA256', 'SM2', 'EC_P256', 'EC_P384', 'RSA_2048')


def private_secrets(algorithm: str, material: bytes) -> list[bytes]:
    """The parts of a key's material that must stay secret."""
    if algorithm in ('EC_P256', 'EC_P384', 'RSA_2048'):
        key = serialization.load_der_private_key(material, None)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            n = key.private_numbers()
            return [n.private_value.to_bytes(key.key_size // 8 + 1,
                                             'big').lstrip(b'\0')]
        assert isinstance(key, rsa.RSAPrivateKey)
        n = key.private_numbers()
        return [v.to_bytes((v.bit_length() + 7) // 8, 'big')
                for v in (n.d, n.p, n.q)]
    if algorithm == 'SM2':
        # ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING,..}
        at = material.find(b'\x02\x01\x01\x04\x20')
        assert at >= 0, 'no SM2 private scalar in the exported PKCS#8'
        return [material[at + 5:at + 37]]
    return [material]


def forms(secret: bytes) -> list[bytes]:
    """Ways a secret could be written down."""
    return [secret, secret.hex().encode(), secret.hex().upper().encode(),
            base64.b64encode(secret).rstrip(b'='),
            base64.urlsafe_b64encode(secret).rstrip(b'=')]


class TestNoKeyMaterialLeaks(testtools.TestCase):

    backend = 'sqlite'

    def setUp(self):
        super().setUp()
        database = self.useFixture(test_db.Database(self.backend))
        self.url = database.url
        self.dp = self.useFixture(dataplane.DataPlane(database.url))

    def _exercise(self) -> list[bytes]:
        dp = self.dp
        secrets = []
        for algorithm in ALGORITHMS:
            purpose = None
            key = dp.ok('POST', '/v1/keys', body={
                'algorithm': algorithm, 'exportable': True})
            base = '/v1/keys/%s' % key['key_id']
            purpose = key['purpose']
            if purpose == 'encrypt':
                plaintext = ('tenant data for %s' % algorithm).encode()
                secrets.append(plaintext)
                ct = dp.ok('POST', base + '/encrypt',
                           body={'plaintext': b64(plaintext)})
                dp.ok('POST', base + '/decrypt',
                      body={'ciphertext': ct['ciphertext']})
                if algorithm in ('SM4_GCM', 'AES_256_GCM'):
                    dk = dp.ok('POST', base + '/datakey',
                               body={'spec': 'AES_256'})
                    secrets.append(unb64(dk['plaintext']))
            elif purpose == 'sign':
                dp.ok('POST', base + '/sign', body={'message': b64(b'm')})
            else:
                dp.ok('POST', base + '/hmac', body={'data': b64(b'm')})
            dp.ok('POST', base + '/rotate')
            for version in (1, 2):
                exported = dp.ok('GET', base + '/export?version=%d' % version)
                secrets.extend(private_secrets(
                    algorithm, unb64(exported['material'])))
        return secrets

    def _keystore_dump(self) -> bytes:
        engine = sa.create_engine(self.url)
        self.addCleanup(engine.dispose)
        meta = sa.MetaData()
        meta.reflect(engine)
        parts = []
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                for row in conn.execute(table.select()):
                    for value in row:
                        if isinstance(value, (bytes, bytearray, memoryview)):
                            parts.append(bytes(value))
                        else:
                            parts.append(str(value).encode())
        return b'\n'.join(parts)

    def test_secrets_never_reach_keystore_or_logs(self):
        dp = self.dp
        secrets = self._exercise()
        master = secretfile.read_secret_file(dp.master_key_file)
        group_secret = secretfile.read_secret_file(dp.secret_file)
        dump = self._keystore_dump()
        engine = sa.create_engine(self.url)
        self.addCleanup(engine.dispose)
        with engine.connect() as conn:
            sealed = conn.execute(sa.text(
                'SELECT sealed FROM domain_keys')).scalar_one()
        domain_key = wrapping.unseal_domain_key(master, bytes(sealed),
                                                dp.group_id)
        secrets += [master, group_secret, domain_key]
        secrets += [t.split('.', 1)[1].encode() for t in dp.tokens.values()]
        self.assertGreater(len(secrets), 20)

        logs = b''
        for path in dp.log_files():
            with open(path, 'rb') as f:
                logs += f.read()
        self.assertIn(b'DEBUG', logs, 'debug logging was not on')
        for secret in secrets:
            for form in forms(secret):
                self.assertNotIn(form, dump, 'a secret is in the keystore')
                self.assertNotIn(form, logs, 'a secret is in a log file')
