"""The registry client against a small real HTTP(S) server."""

import base64
import hashlib
import json
import socket
import time
import urllib.parse

import fixtures
import testtools
from oslo_config import fixture as config_fixture

from cryptocloud.common import exception
from cryptocloud.conf import CONF
from cryptocloud.images import registry
from cryptocloud.tests.unit.images import fakes

USER = 'cryptocloud'
PASSWORD = 'correct horse'
DIGEST = 'sha256:' + 'ab' * 32
MANIFEST = json.dumps({'schemaVersion': 2, 'layers': []}).encode()


def _basic(user: str, password: str) -> str:
    return 'Basic ' + base64.b64encode(
        ('%s:%s' % (user, password)).encode()).decode()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class FakeRegistry:
    """Answers like Debian's docker-registry with htpasswd auth."""

    def __init__(self):
        self.manifests = {'team/vhsm:1.0': (DIGEST, MANIFEST)}
        self.send_digest = True
        self.allow_delete = True
        self.deleted = []

    def __call__(self, method, path, headers):
        base = {'Docker-Distribution-API-Version': 'registry/2.0'}
        if headers.get('authorization') != _basic(USER, PASSWORD):
            return fakes.Reply(401, dict(
                base, **{'WWW-Authenticate': 'Basic realm="test"'}),
                b'{"errors":[{"code":"UNAUTHORIZED"}]}')
        if path == '/v2/':
            return fakes.Reply(200, base, b'{}')
        repo, _, ref = path[len('/v2/'):].partition('/manifests/')
        if method == 'DELETE':
            if not self.allow_delete:
                return fakes.Reply(405, base)
            self.deleted.append((repo, ref))
            return fakes.Reply(202, base)
        found = self.manifests.get('%s:%s' % (repo, ref))
        if found is None:
            return fakes.Reply(404, base, b'{"errors":[]}')
        digest, body = found
        headers = dict(base, **{'Content-Type': 'application/vnd.docker.'
                                'distribution.manifest.v2+json'})
        if self.send_digest:
            headers['Docker-Content-Digest'] = digest
        return fakes.Reply(200, headers, body)


class RegistryClientTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.fake = FakeRegistry()
        self.server = self.useFixture(fakes.HTTPServer(self.fake))

    def client(self, username=USER, password=PASSWORD, **kwargs):
        client = registry.RegistryClient(self.server.address, username,
                                         password, **kwargs)
        self.addCleanup(client.close)
        return client

    def test_ping(self):
        self.client().ping()
        self.assertEqual(('GET', '/v2/'), self.server.requests[-1][:2])

    def test_ping_wrong_password(self):
        exc = self.assertRaises(exception.RegistryError,
                                self.client(password='wrong').ping)
        self.assertEqual(
            'Image registry %s: it rejected the credentials of user '
            'cryptocloud (HTTP 401); check [registry] username and '
            'password' % self.server.address, str(exc))
        self.assertNotIn('wrong', str(exc))

    def test_ping_without_credentials(self):
        exc = self.assertRaises(exception.RegistryError,
                                self.client(username=None).ping)
        self.assertIn('authentication required (HTTP 401); set [registry] '
                      'username and password', str(exc))
        self.assertNotIn('authorization', self.server.requests[-1][2])

    def test_manifest_digest(self):
        self.assertEqual(DIGEST, self.client().manifest_digest('team/vhsm',
                                                               '1.0'))
        method, path, headers = self.server.requests[-1]
        self.assertEqual(('HEAD', '/v2/team/vhsm/manifests/1.0'),
                         (method, path))
        for media_type in registry.MANIFEST_MEDIA_TYPES:
            self.assertIn(media_type, headers['accept'])

    def test_manifest_digest_without_header(self):
        self.fake.send_digest = False
        self.assertEqual(
            'sha256:' + hashlib.sha256(MANIFEST).hexdigest(),
            self.client().manifest_digest('team/vhsm', '1.0'))
        self.assertEqual(['HEAD', 'GET'],
                         [r[0] for r in self.server.requests[-2:]])

    def test_manifest_digest_errors(self):
        client = self.client()
        exc = self.assertRaises(exception.RegistryError,
                                client.manifest_digest, 'team/vhsm', '2.0')
        self.assertIn('it has no manifest team/vhsm:2.0', str(exc))
        self.fake.manifests['team/vhsm:bad'] = ('md5:1234', b'')
        exc = self.assertRaises(exception.RegistryError,
                                client.manifest_digest, 'team/vhsm', 'bad')
        self.assertIn("it gave 'md5:1234' as the digest", str(exc))
        self.assertRaises(exception.InvalidInput, client.manifest_digest,
                          'Team/VHSM', '1.0')
        self.assertRaises(exception.InvalidInput, client.manifest_digest,
                          'team/vhsm', 'a:b')

    def test_delete_manifest(self):
        client = self.client()
        client.delete_manifest('team/vhsm', DIGEST)
        self.assertEqual([('team/vhsm', DIGEST)], self.fake.deleted)
        self.fake.allow_delete = False
        exc = self.assertRaises(exception.RegistryError,
                                client.delete_manifest, 'team/vhsm', DIGEST)
        self.assertIn('does not allow deletion', str(exc))

    def test_https_only_registry(self):
        self.server.handler = lambda *a: fakes.Reply(
            400, body=b'Client sent an HTTP request to an HTTPS server.\n')
        exc = self.assertRaises(exception.RegistryError, self.client().ping)
        self.assertIn('it speaks HTTPS; set [registry] tls = true',
                      str(exc))

    def test_tls_to_a_plain_http_registry(self):
        exc = self.assertRaises(exception.RegistryError,
                                self.client(tls=True).ping)
        self.assertIn('TLS with https://%s/v2/ failed'
                      % self.server.address, str(exc))
        self.assertIn('set [registry] tls = false', str(exc))


class BearerRegistryTest(testtools.TestCase):
    """A registry that sends clients to a token service."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.token_requests = []
        self.server = self.useFixture(fakes.HTTPServer(self.handle))

    def handle(self, method, path, headers):
        url = urllib.parse.urlsplit(path)
        if url.path == '/token':
            self.token_requests.append(urllib.parse.parse_qs(url.query))
            if headers.get('authorization') != _basic(USER, PASSWORD):
                return fakes.Reply(401)
            return fakes.Reply(200, body=b'{"token": "t0k3n"}')
        if headers.get('authorization') != 'Bearer t0k3n':
            scope = ('scope="repository:team/vhsm:pull",'
                     if 'manifests' in path else '')
            return fakes.Reply(401, {'WWW-Authenticate': (
                'Bearer realm="http://%s/token",service="test",%s'
                % (self.server.address, scope)).rstrip(',')})
        return fakes.Reply(200, {
            'Docker-Content-Digest': DIGEST,
            'Docker-Distribution-API-Version': 'registry/2.0'})

    def test_token_flow(self):
        client = registry.RegistryClient(self.server.address, USER,
                                         PASSWORD)
        client.ping()
        self.assertEqual(DIGEST, client.manifest_digest('team/vhsm', '1'))
        self.assertEqual(
            [{'service': ['test']},
             {'service': ['test'], 'scope': ['repository:team/vhsm:pull']}],
            self.token_requests)
        # Tokens are kept per scope.
        client.manifest_digest('team/vhsm', '1')
        self.assertEqual(2, len(self.token_requests))

    def test_token_refused(self):
        client = registry.RegistryClient(self.server.address, USER, 'nope')
        exc = self.assertRaises(exception.RegistryError, client.ping)
        self.assertIn('rejected the credentials of user cryptocloud',
                      str(exc))


class TLSRegistryTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        tmp = self.useFixture(fixtures.TempDir()).path
        self.cert_file, key_file = fakes.self_signed_cert(tmp)
        self.server = self.useFixture(fakes.HTTPServer(
            FakeRegistry(),
            ssl_context=fakes.server_ssl_context(self.cert_file, key_file)))

    def test_with_its_ca(self):
        client = registry.RegistryClient(self.server.address, USER,
                                         PASSWORD, tls=True,
                                         ca_file=self.cert_file)
        client.ping()
        self.assertEqual(DIGEST, client.manifest_digest('team/vhsm', '1.0'))

    def test_untrusted_certificate(self):
        client = registry.RegistryClient(self.server.address, USER,
                                         PASSWORD, tls=True)
        exc = self.assertRaises(exception.RegistryError, client.ping)
        self.assertIn('[SSL: CERTIFICATE_VERIFY_FAILED]', str(exc))
        self.assertIn('is [registry] ca_file the CA', str(exc))


class UnreachableTest(testtools.TestCase):

    def test_connection_refused(self):
        address = '127.0.0.1:%d' % _closed_port()
        exc = self.assertRaises(exception.RegistryError,
                                registry.RegistryClient(address).ping)
        self.assertEqual('Image registry %s: cannot connect to http://%s/v2/:'
                         ' Connection refused' % (address, address),
                         str(exc))
        self.assertEqual(502, exc.code)

    def test_no_answer(self):
        silent = socket.socket()
        self.addCleanup(silent.close)
        silent.bind(('127.0.0.1', 0))
        silent.listen(8)
        address = '127.0.0.1:%d' % silent.getsockname()[1]
        client = registry.RegistryClient(address, timeout=0.3)
        start = time.monotonic()
        exc = self.assertRaises(exception.RegistryError, client.ping)
        self.assertLess(time.monotonic() - start, 5)
        self.assertIn('no answer from http://%s/v2/ within 0.3 s' % address,
                      str(exc))


class ReferenceTest(testtools.TestCase):

    def test_names_and_references(self):
        client = registry.RegistryClient('registry.example:5000')
        self.assertEqual('registry.example:5000/cryptocloud/vhsm',
                         client.name('cryptocloud/vhsm'))
        self.assertEqual(
            'registry.example:5000/cryptocloud/vhsm@' + DIGEST,
            client.reference('cryptocloud/vhsm', DIGEST))
        self.assertEqual('http://registry.example:5000', client.base_url)
        self.assertEqual('https://registry.example:5000',
                         registry.RegistryClient('registry.example:5000',
                                                 tls=True).base_url)

    def test_invalid_references(self):
        client = registry.RegistryClient('127.0.0.1:5000')
        for repository, digest in (
                ('cryptocloud/vhsm', 'sha256:abc'),
                ('cryptocloud/vhsm', 'latest'),
                ('cryptocloud/vhsm', DIGEST.upper()),
                ('CryptoCloud/vhsm', DIGEST),
                ('cryptocloud//vhsm', DIGEST),
                ('/vhsm', DIGEST),
                ('vhsm-', DIGEST)):
            self.assertRaises(exception.InvalidInput, client.reference,
                              repository, digest)
        for good in ('vhsm', 'a/b/c', 'cc-test_1/v.hsm', 'a__b/c--d'):
            registry.check_repository(good)

    def test_invalid_address(self):
        for address in ('http://127.0.0.1:5000', '127.0.0.1:5000/x', ''):
            exc = self.assertRaises(exception.ConfigurationError,
                                    registry.RegistryClient, address)
            self.assertIn('[registry] address must be host:port', str(exc))
        self.assertEqual('127.0.0.1:5000',
                         registry.RegistryClient('127.0.0.1:5000/').address)

    def test_auth_config(self):
        self.assertIsNone(registry.RegistryClient('r:1').auth_config())
        self.assertEqual(
            {'username': 'u', 'password': 'p', 'serveraddress': 'r:1'},
            registry.RegistryClient('r:1', 'u', 'p').auth_config())

    def test_from_conf(self):
        conf = self.useFixture(config_fixture.Config(CONF)).conf
        conf.set_override('address', '10.1.2.3:5001', group='registry')
        conf.set_override('username', 'builder', group='registry')
        conf.set_override('password', 's3cret', group='registry')
        conf.set_override('tls', True, group='registry')
        conf.set_override('ca_file', '/etc/ca.pem', group='registry')
        client = registry.RegistryClient.from_conf(conf)
        self.assertEqual('10.1.2.3:5001', client.address)
        self.assertEqual('builder', client.username)
        self.assertTrue(client.tls)
        self.assertEqual('/etc/ca.pem', client.ca_file)
        self.assertEqual('s3cret', client.auth_config()['password'])
