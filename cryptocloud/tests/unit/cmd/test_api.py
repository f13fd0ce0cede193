"""cryptocloud-api as a program: serves, answers, stops cleanly."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import bcrypt
import fixtures
import testtools

from cryptocloud.db import migration


class TestAPIProgram(testtools.TestCase):

    def test_serves_and_stops_on_sigterm(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        url = 'sqlite:///%s' % os.path.join(tmp, 'control.sqlite')
        migration.upgrade(url, schema='control')
        htpasswd = os.path.join(tmp, 'htpasswd')
        with open(htpasswd, 'w') as f:
            f.write('admin:%s:ops:admin\n' % bcrypt.hashpw(
                b'pw', bcrypt.gensalt(rounds=4)).decode())
        conf = os.path.join(tmp, 'cryptocloud.conf')
        with open(conf, 'w') as f:
            f.write('[DEFAULT]\ntransport_url = fake:/\nuse_stderr = true\n'
                    '[api]\nport = 0\nhttp_basic_auth_user_file = %s\n'
                    '[database]\nconnection = %s\n' % (htpasswd, url))
        proc = subprocess.Popen(
            [sys.executable, '-m', 'cryptocloud.cmd.api', '--config-file',
             conf], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
            text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        port = None
        deadline = time.monotonic() + 30
        lines = []
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r'listening on http://127\.0\.0\.1:(\d+)', line)
            if found:
                port = int(found.group(1))
        self.assertIsNotNone(port, ''.join(lines)[-3000:])
        base = 'http://127.0.0.1:%d' % port
        # Loopback HTTP to the program under test.
        with urllib.request.urlopen(base + '/') as resp:  # noqa: S310
            self.assertEqual('v1', json.load(resp)['default_version']['id'])
        exc = self.assertRaises(urllib.error.HTTPError,
                                urllib.request.urlopen,  # noqa: S310
                                base + '/v1/nodes')
        self.assertEqual(401, exc.code)
        self.assertEqual('Unauthorized', json.load(exc)['error']['type'])
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(0, proc.wait(timeout=30))
        rest = proc.stderr.read()
        self.assertIn('Admin API stopped', rest)
