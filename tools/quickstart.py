"""Start a local data plane, make a real SM2 signature, keep serving."""

import argparse
import base64
import os
import signal
import subprocess
import sys
import tempfile
import threading

import requests

from cryptocloud.common import localplane

MESSAGE = b'hello, cryptocloud'


def _openssl_verify(pem: str, message: bytes, signature: bytes,
                    workdir: str) -> bool:
    paths = {n: os.path.join(workdir, n) for n in ('pub.pem', 'msg', 'sig')}
    for name, data in (('pub.pem', pem.encode()), ('msg', message),
                       ('sig', signature)):
        with open(paths[name], 'wb') as f:
            f.write(data)
    return subprocess.run(
        ['openssl', 'pkeyutl', '-verify', '-pubin', '-inkey',
         paths['pub.pem'], '-rawin', '-digest', 'sm3', '-in', paths['msg'],
         '-sigfile', paths['sig'], '-pkeyopt', 'distid:1234567812345678'],
        capture_output=True).returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--workdir', help='Where the keystore, secrets, '
                        'configs and logs go (default: a new temp dir).')
    parser.add_argument('--no-wait', action='store_true',
                        help='Stop after the demonstration call.')
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix='cryptocloud-')
    plane = localplane.LocalDataPlane(workdir, vhsms=2,
                                      projects=('demo-project',))
    print('Starting two vHSMs and a crypto service in %s ...' % workdir)
    plane.start()
    try:
        token = plane.tokens['demo-project']
        headers = {'Authorization': 'Bearer ' + token}
        s = requests.Session()
        key = s.post(plane.url + '/v1/keys', json={'algorithm': 'SM2'},
                     headers=headers, timeout=30)
        key.raise_for_status()
        key_id = key.json()['key_id']
        signed = s.post(plane.url + '/v1/keys/%s/sign' % key_id,
                        json={'message': base64.b64encode(MESSAGE).decode()},
                        headers=headers, timeout=30)
        signed.raise_for_status()
        signature = base64.b64decode(signed.json()['signature'])
        pem = s.get(plane.url + '/v1/keys/%s/public-key' % key_id,
                    headers=headers, timeout=30).json()['public_key_pem']
        good = _openssl_verify(pem, MESSAGE, signature, workdir)
        print('\nService endpoint: %s' % plane.url)
        print('Tenant credential (project demo-project): %s' % token)
        print('SM2 key %s signed %r; openssl verify: %s'
              % (key_id, MESSAGE.decode(), 'OK' if good else 'FAILED'))
        print('\nTry it:\n  curl -s -H "Authorization: Bearer %s" '
              '-H "Content-Type: application/json" -d \'{"message": "%s"}\' '
              '%s/v1/keys/%s/sign' % (token, base64.b64encode(
                  MESSAGE).decode(), plane.url, key_id))
        print('\nLogs: %s' % ', '.join(plane.log_files()))
        if not good:
            return 1
        if args.no_wait:
            return 0
        print('\nServing until Ctrl-C.')
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *a: stop.set())
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
        while not stop.wait(1):
            pass
        return 0
    finally:
        plane.stop()


if __name__ == '__main__':
    sys.exit(main())
