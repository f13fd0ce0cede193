"""A tiny real HTTP server for the image tests, run in a thread."""

import datetime
import http.server
import ipaddress
import os
import ssl
import threading

import fixtures
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import oid


class Reply:
    """What the server answers: status, headers, body."""

    def __init__(self, status: int = 200, headers: dict | None = None,
                 body: bytes = b''):
        self.status = status
        self.headers = dict(headers or {})
        self.body = body


class HTTPServer(fixtures.Fixture):
    """Serves ``handler(method, path, headers) -> Reply`` on 127.0.0.1.

    ``self.requests`` records (method, path, headers) of every request;
    ``self.port`` is the port it listens on.
    """

    def __init__(self, handler, ssl_context=None):
        super().__init__()
        self.handler = handler
        self.ssl_context = ssl_context
        self.requests: list[tuple[str, str, dict]] = []

    def _setUp(self):
        fixture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def _serve(self):
                headers = {k.lower(): v for k, v in self.headers.items()}
                fixture.requests.append((self.command, self.path, headers))
                reply = fixture.handler(self.command, self.path, headers)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header('Content-Length', str(len(reply.body)))
                self.end_headers()
                if self.command != 'HEAD':
                    self.wfile.write(reply.body)

            do_GET = do_HEAD = do_DELETE = _serve

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        self.server.daemon_threads = True
        if self.ssl_context is not None:
            self.server.socket = self.ssl_context.wrap_socket(
                self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        thread = threading.Thread(target=self.server.serve_forever,
                                  kwargs={'poll_interval': 0.05},
                                  daemon=True)
        thread.start()
        self.addCleanup(thread.join, 5)
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)

    @property
    def address(self) -> str:
        return '127.0.0.1:%d' % self.port


def self_signed_cert(directory: str) -> tuple[str, str]:
    """(cert file, key file) of a certificate for 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(oid.NameOID.COMMON_NAME,
                                         'cryptocloud test registry')])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                           critical=True)
            .sign(key, hashes.SHA256()))
    cert_file = os.path.join(directory, 'registry.crt')
    key_file = os.path.join(directory, 'registry.key')
    with open(cert_file, 'wb') as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_file, 'wb') as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_file, key_file


def server_ssl_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context
