"""The app behind the real threaded server, over loopback HTTP."""

import http.client
import json

from cryptocloud.common import wsgi
from cryptocloud.tests.unit.cryptoservice import base


class TestServer(base.AppTestCase):

    def setUp(self):
        super().setUp()
        self.server = wsgi.serve(self.app, '127.0.0.1', 0, 4)
        self.addCleanup(self.server.stop)
        self.assertNotEqual(0, self.server.port)

    def connect(self):
        conn = http.client.HTTPConnection('127.0.0.1', self.server.port,
                                          timeout=10)
        self.addCleanup(conn.close)
        return conn

    def test_keep_alive_requests(self):
        conn = self.connect()
        headers = {'Authorization': 'Bearer ' + self.token,
                   'Content-Type': 'application/json'}
        for _ in range(3):
            conn.request('POST', '/v1/hash', json.dumps(
                {'algorithm': 'SM3', 'data': 'aGk='}), headers)
            resp = conn.getresponse()
            self.assertEqual(200, resp.status)
            self.assertEqual('SM3', json.loads(resp.read())['algorithm'])
        # An error answer keeps the connection usable too.
        conn.request('POST', '/v1/hash', '{', headers)
        resp = conn.getresponse()
        self.assertEqual(400, resp.status)
        resp.read()
        conn.request('GET', '/healthz')
        self.assertEqual(200, conn.getresponse().status)

    def test_chunked_body(self):
        conn = self.connect()
        conn.putrequest('POST', '/v1/random')
        conn.putheader('Authorization', 'Bearer ' + self.token)
        conn.putheader('Content-Type', 'application/json')
        conn.putheader('Transfer-Encoding', 'chunked')
        conn.endheaders()
        for part in (b'{"length"', b': 5}'):
            conn.send(b'%x\r\n%s\r\n' % (len(part), part))
        conn.send(b'0\r\n\r\n')
        resp = conn.getresponse()
        self.assertEqual(200, resp.status)
        self.assertEqual(8, len(json.loads(resp.read())['random']))

    def test_oversize_closes_without_reading(self):
        conn = self.connect()
        conn.putrequest('POST', '/v1/random')
        conn.putheader('Content-Type', 'application/json')
        conn.putheader('Content-Length', str(10 ** 9))
        conn.endheaders()
        resp = conn.getresponse()
        self.assertEqual(413, resp.status)
        self.assertEqual('close', resp.getheader('Connection'))
