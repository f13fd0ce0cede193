"""cryptocloud-all-in-one: the whole control plane in one process.

Admin API, conductor and compute node(s) with a SQLite database, the
in-process message bus and the process driver, so that a newcomer can
provision a vHSM group and a crypto service and call it with no Docker,
broker or database server.  Authentication is on (HTTP basic, with an
admin password made at first start and kept in the state directory).

    cryptocloud-all-in-one [--state-dir DIR] [--api-port PORT]
                           [--computes N | --node HOST:ROLES ...]
                           [--port-range START-END]
                           [--vhsms N] [--instances N] [--replicas N]
                           [--no-provision] [--no-wait]
"""

import argparse
import base64
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types

import bcrypt
import requests

from cryptocloud.api import app as api_app
from cryptocloud.common import rpc
from cryptocloud.common import secretfile
from cryptocloud.common import service
from cryptocloud.common import wsgi
from cryptocloud.compute import manager as compute_manager
from cryptocloud.compute import service as compute_service
from cryptocloud.compute.drivers import base as driver_base
from cryptocloud.conductor import rpcapi as conductor_rpcapi
from cryptocloud.conductor import service as conductor_service
from cryptocloud.db import api as db_api
from cryptocloud.db import migration

CONF = service.CONF
HOST = '127.0.0.1'
DEMO_SERVICE = 'demo-service'
DEMO_GROUP = 'demo-vhsm-group'
MESSAGE = b'hello from cryptocloud-all-in-one'


def _parse(argv):
    parser = argparse.ArgumentParser(
        prog='cryptocloud-all-in-one', description=__doc__.split('\n')[0])
    parser.add_argument('--state-dir', default=os.path.abspath('.aio'),
                        help='Databases, secrets, workload files and logs '
                             '(default: ./.aio). Kept across runs.')
    parser.add_argument('--api-port', type=int, default=9600,
                        help='Admin API port on 127.0.0.1 (0: any free).')
    parser.add_argument('--computes', type=int, default=1,
                        help='Compute nodes to run in this process, each '
                             'with both roles (default 1).')
    parser.add_argument('--node', action='append', type=_node_spec,
                        default=[], metavar='HOST:ROLES',
                        help='A compute node to run, e.g. device-1:device '
                             'or n1:device,service; repeat for more. '
                             'Replaces --computes.')
    parser.add_argument('--port-range', type=_port_range, default=None,
                        metavar='START-END',
                        help='TCP ports the nodes hand to workloads, '
                             'shared out between them (default: '
                             '[compute] port_range_start/end, '
                             '20000-29999).')
    parser.add_argument('--vhsms', type=int, default=2,
                        help='vHSMs in the demo group (default 2).')
    parser.add_argument('--instances', type=int, default=1,
                        help='Instances of the demo service (default 1).')
    parser.add_argument('--replicas', type=int, default=0,
                        help='Cold-standby replicas per instance (default '
                             '0): each is started on the same host and '
                             'port when its instance dies.')
    parser.add_argument('--no-provision', action='store_true',
                        help='Only run the control plane.')
    parser.add_argument('--no-wait', action='store_true',
                        help='Stop after provisioning and the demo call.')
    parser.add_argument('--keep-workloads', action='store_true',
                        help='Leave vHSMs and instances running at exit '
                             '(they are adopted at the next start).')
    return parser.parse_args(argv)


def _node_spec(text: str) -> tuple[str, list[str]]:
    host, sep, roles = text.partition(':')
    wanted = [r for r in roles.replace('+', ',').split(',') if r]
    if not sep or not host or not wanted:
        raise argparse.ArgumentTypeError(
            '%r is not HOST:ROLES (e.g. device-1:device)' % text)
    unknown = sorted(set(wanted) - {'device', 'service'})
    if unknown:
        raise argparse.ArgumentTypeError(
            'unknown role(s) %s in %r; roles are device and service'
            % (', '.join(unknown), text))
    return host, wanted


def _port_range(text: str) -> tuple[int, int]:
    start, sep, end = text.partition('-')
    try:
        first, last = int(start), int(end)
    except ValueError:
        first = last = -1
    if not sep or not 1024 <= first <= last <= 65535:
        raise argparse.ArgumentTypeError(
            '%r is not START-END with 1024 <= START <= END <= 65535'
            % text)
    return first, last


def _admin_password(state: str) -> str:
    """The admin password, made at first start; htpasswd holds its hash."""
    path = os.path.join(state, 'admin-password')
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(secrets.token_urlsafe(18) + '\n')
    with open(path) as f:
        password = f.read().strip()
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    htpasswd = os.path.join(state, 'htpasswd')
    fd = os.open(htpasswd, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write('admin:%s:admin:admin\n' % hashed)
    return password


def _configure(args, state: str) -> None:
    for name in ('master.key', 'group-secret.seed'):
        path = os.path.join(state, name)
        if not os.path.exists(path):
            secretfile.create_secret_file(path)
    overrides = {
        None: {'transport_url': 'fake://'},
        'database': {'connection': 'sqlite:///%s' % os.path.join(
            state, 'cryptocloud.sqlite')},
        'api': {'host': HOST, 'port': args.api_port,
                'auth_strategy': 'http_basic',
                'http_basic_auth_user_file': os.path.join(state,
                                                          'htpasswd')},
        'conductor': {'host': 'aio-conductor', 'heartbeat_timeout': 10,
                      'periodic_interval': 2},
        'compute': {
            'address': HOST, 'roles': ['device', 'service'],
            'driver': 'process', 'heartbeat_interval': 1,
            'state_path': os.path.join(state, 'compute'),
            'master_key_file': os.path.join(state, 'master.key'),
            'group_secret_seed_file': os.path.join(state,
                                                   'group-secret.seed'),
            'keystore_connection': 'sqlite:///%s' % os.path.join(
                state, 'keystore.sqlite')},
    }
    if args.port_range:
        overrides['compute'].update(port_range_start=args.port_range[0],
                                    port_range_end=args.port_range[1])
    for group, opts in overrides.items():
        for name, value in opts.items():
            CONF.set_override(name, value, group=group)
    migration.upgrade(CONF.database.connection, schema='control')
    migration.upgrade(CONF.compute.keystore_connection, schema='keystore')


def _compute_nodes(specs: list[tuple[str, list[str]]]) -> list:
    """One compute node per ``(host, roles)``, each with its own files
    and a share of the port range."""
    base = CONF.compute
    span = (base.port_range_end - base.port_range_start + 1) // len(specs)
    nodes = []
    for index, (host, roles) in enumerate(specs):
        opts = {name: getattr(base, name) for name in base}
        opts.update(
            host=host, roles=roles,
            state_path=os.path.join(base.state_path, host),
            port_range_start=base.port_range_start + index * span,
            port_range_end=base.port_range_start + (index + 1) * span - 1)
        node_conf = types.SimpleNamespace(
            compute=types.SimpleNamespace(**opts))
        driver = driver_base.load_driver(base.driver, opts['state_path'])
        manager = compute_manager.ComputeManager(driver, host=host,
                                                 conf=node_conf)
        nodes.append(compute_service.ComputeService(manager))
    return nodes


class _Admin:
    """A small client of the admin API for the demo."""

    def __init__(self, url: str, password: str):
        self.url = url
        self.session = requests.Session()
        self.session.auth = ('admin', password)

    def call(self, method: str, path: str, body=None) -> dict:
        resp = self.session.request(method, self.url + path, json=body,
                                    timeout=60)
        if resp.status_code >= 400:
            raise RuntimeError('%s %s: %d %s' % (method, path,
                                                 resp.status_code,
                                                 resp.text[:500]))
        return resp.json() if resp.content else {}

    def wait(self, path: str, key: str, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.call('GET', path)
            if body.get(key) in ('ACTIVE', 'SUCCEEDED', 'FAILED', 'ERROR'):
                return body
            time.sleep(0.2)
        raise RuntimeError('%s did not settle within %ss' % (path, timeout))


def _named(admin: _Admin, collection: str, name: str) -> dict | None:
    for item in admin.call('GET', '/v1/%s' % collection)[collection]:
        if item['name'] == name:
            return item
    return None


def _provision(admin: _Admin, args) -> tuple[dict, str]:
    """The demo group and service, made or found; and a credential."""
    group = _named(admin, 'vhsm_groups', DEMO_GROUP)
    if group is None:
        print('Provisioning vHSM group %s (%d vHSMs) ...'
              % (DEMO_GROUP, args.vhsms))
        group = admin.call('POST', '/v1/vhsm_groups', {
            'name': DEMO_GROUP, 'size': args.vhsms})['vhsm_group']
    elif group['state'] == 'ERROR':
        # Reconciliation leaves failed resources alone; a resize retries.
        print('vHSM group %s is ERROR (%s); retrying.'
              % (DEMO_GROUP, group.get('status_reason')))
        admin.call('PATCH', '/v1/vhsm_groups/%s' % group['id'],
                   {'size': group.get('size') or args.vhsms})
    group = admin.wait('/v1/vhsm_groups/%s' % group['id'], 'state')
    if group['state'] != 'ACTIVE':
        raise RuntimeError('vHSM group is %s: %s' % (
            group['state'], group.get('status_reason')))
    svc = _named(admin, 'services', DEMO_SERVICE)
    if svc is None:
        print('Provisioning service %s (%d instance(s)) ...'
              % (DEMO_SERVICE, args.instances))
        made = admin.call('POST', '/v1/services', {
            'name': DEMO_SERVICE, 'vhsm_group_id': group['id'],
            'instances': args.instances, 'replicas': args.replicas})
        svc, token = made['service'], made['credential']['token']
    else:
        if svc['state'] == 'ERROR':
            print('Service %s is ERROR (%s); retrying.'
                  % (DEMO_SERVICE, svc.get('status_reason')))
            admin.call('PATCH', '/v1/services/%s' % svc['id'],
                       {'instances': svc.get('instances') or args.instances})
        # The first credential was shown once, at creation; make another.
        token = admin.call('POST', '/v1/services/%s/credentials'
                           % svc['id'])['credential']['token']
    started = time.monotonic()
    svc = admin.wait('/v1/services/%s' % svc['id'], 'state')
    if svc['state'] != 'ACTIVE':
        raise RuntimeError('service is %s: %s' % (
            svc['state'], svc.get('status_reason')))
    print('Service ACTIVE (%.1f s of waiting).' % (time.monotonic()
                                                   - started))
    rows = admin.call('GET', '/v1/instances?service_id=%s'
                      % svc['id'])['instances']
    for row in rows:
        print('  %-7s %s %s:%s %s' % (row['role'], row['id'], row['host'],
                                      row['port'], row['state']))
    if any(r['state'] == 'STANDBY' for r in rows):
        print('  (a STANDBY replica is ready; if its primary dies it is '
              'started and serves the same endpoint)')
    return svc, token


def _first_key(admin: _Admin, svc: dict, token: str,
               timeout: float = 120.0) -> tuple[str, str]:
    """Create an SM2 key once the service answers; return endpoint, key.

    After a restart the service row is ACTIVE while its instances are
    being replaced (the workloads were stopped at the last exit), and a
    new credential reaches the instances with the next update, so this
    retries, re-reading the endpoint, until the tenant call works.
    """
    hdrs = {'Authorization': 'Bearer ' + token}
    deadline = time.monotonic() + timeout
    last = ''
    while time.monotonic() < deadline:
        svc = admin.call('GET', '/v1/services/%s' % svc['id'])
        endpoint = svc.get('endpoint') or {}
        if svc['state'] == 'ACTIVE' and endpoint.get('port'):
            url = 'http://%s:%d' % (endpoint['host'], endpoint['port'])
            try:
                key = requests.post(url + '/v1/keys', headers=hdrs,
                                    json={'algorithm': 'SM2'}, timeout=30)
                if key.status_code == 201:
                    return url, key.json()['key_id']
                last = '%d %s' % (key.status_code, key.text[:200])
            except requests.ConnectionError as exc:
                last = str(exc)
        time.sleep(0.5)
    raise RuntimeError('the service did not answer within %ss: %s'
                       % (timeout, last))


def _demo_call(endpoint: str, key_id: str, token: str) -> bool:
    """Sign with the SM2 key and verify the signature with openssl."""
    hdrs = {'Authorization': 'Bearer ' + token}
    sig = requests.post(endpoint + '/v1/keys/%s/sign' % key_id,
                        headers=hdrs, timeout=30,
                        json={'message': base64.b64encode(MESSAGE).decode()})
    sig.raise_for_status()
    pem = requests.get(endpoint + '/v1/keys/%s/public-key' % key_id,
                       headers=hdrs, timeout=30).json()['public_key_pem']
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, data in (('pub.pem', pem.encode()), ('msg', MESSAGE),
                           ('sig', base64.b64decode(
                               sig.json()['signature']))):
            files[name] = os.path.join(tmp, name)
            with open(files[name], 'wb') as f:
                f.write(data)
        good = subprocess.run(
            ['openssl', 'pkeyutl', '-verify', '-pubin', '-inkey',
             files['pub.pem'], '-rawin', '-digest', 'sm3', '-in',
             files['msg'], '-sigfile', files['sig'], '-pkeyopt',
             'distid:1234567812345678'], capture_output=True).returncode == 0
    print('SM2 key %s signed %r; openssl verify: %s'
          % (key_id, MESSAGE.decode(), 'OK' if good else 'FAILED'))
    print('\nTry it:\n  curl -s -H "Authorization: Bearer %s" -H '
          '"Content-Type: application/json" -d \'{"message": "%s"}\' '
          '%s/v1/keys/%s/sign' % (token, base64.b64encode(MESSAGE).decode(),
                                  endpoint, key_id))
    return good


def main(argv: list[str] | None = None) -> int:
    """Run the all-in-one until Ctrl-C."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    state = os.path.abspath(args.state_dir)
    os.makedirs(state, mode=0o700, exist_ok=True)
    service.prepare_service(
        ['--log-file', os.path.join(state, 'all-in-one.log')],
        prog='cryptocloud-all-in-one', default_config_files=[])
    password = _admin_password(state)
    _configure(args, state)

    rpc.init(CONF)
    db = db_api.Connection(CONF.database.connection)
    db.check_schema()
    conductor = conductor_service.ConductorService(CONF, db)
    conductor.start()
    computes = _compute_nodes(args.node or [
        ('aio-compute-%d' % (index + 1), ['device', 'service'])
        for index in range(args.computes)])
    for node in computes:
        node.start()
    application = api_app.setup_app(CONF, db,
                                    conductor_rpcapi.ConductorAPI())
    server = wsgi.serve(application, HOST, CONF.api.port, CONF.api.threads)
    api_url = 'http://%s:%d' % (HOST, server.port)
    print('Admin API: %s (user admin, password in %s/admin-password)'
          % (api_url, state))
    print('Logs: %s' % os.path.join(state, 'all-in-one.log'))
    status = 0
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    try:
        if not args.no_provision:
            admin = _Admin(api_url, password)
            svc, token = _provision(admin, args)
            endpoint, key_id = _first_key(admin, svc, token)
            print('\nService endpoint: %s' % endpoint)
            print('Tenant credential (shown once): %s' % token)
            if not _demo_call(endpoint, key_id, token):
                status = 1
            print('\nAdmin API example:\n  curl -s -u admin:%s %s/v1/services'
                  % (password, api_url))
        if not args.no_wait and status == 0:
            print('\nServing until Ctrl-C.')
            while not stop.wait(1.0):
                pass
    except RuntimeError as exc:
        print('cryptocloud-all-in-one: %s' % exc, file=sys.stderr)
        status = 1
    finally:
        server.stop()
        # The conductor first: its running tasks still talk to the nodes.
        conductor.stop()
        for node in computes:
            node.stop()
            if not args.keep_workloads:
                for workload in node.manager.driver.list():
                    node.manager.driver.stop(workload.workload_id)
        db.close()
        rpc.cleanup()
    return status


if __name__ == '__main__':
    sys.exit(main())
