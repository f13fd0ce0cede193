"""A real Keystone for functional tests.

``tools/keystone-env.sh`` installs Keystone and gunicorn into a
virtualenv of their own and exports ``CRYPTOCLOUD_TEST_KEYSTONE_PYTHON``,
that virtualenv's python.  :class:`Keystone` then runs one Keystone under
gunicorn on a free 127.0.0.1 port, with its own SQLite database and
fernet keys in a temporary directory, bootstraps it with
``keystone-manage`` and stops it at cleanup.  Projects, users, role
assignments and tokens are made through Keystone's own v3 API.

Without the variable the Keystone tests skip, unless
``CRYPTOCLOUD_TEST_REQUIRE_KEYSTONE=1`` (set by ``tools/run-tests.sh``):
then a missing Keystone is a failure, not a silent skip.
"""

import dataclasses
import grp
import os
import pwd
import secrets
import signal
import subprocess
import time
import unittest

import fixtures
import requests

from cryptocloud.common import workloads

HOST = '127.0.0.1'
PYTHON_ENV = 'CRYPTOCLOUD_TEST_KEYSTONE_PYTHON'
REQUIRE_ENV = 'CRYPTOCLOUD_TEST_REQUIRE_KEYSTONE'
DOMAIN = 'default'
SERVICE_PROJECT = 'service'
SERVICE_USER = 'cryptocloud'
# Seconds a keystone-manage step or the server's start may take.
STEP_TIMEOUT = 120

# Keystone parses its own command line when it loads its configuration;
# under gunicorn that is gunicorn's, which it refuses (exit 2, and
# gunicorn starts the worker again and again).  The configuration comes
# from OS_KEYSTONE_CONFIG_DIR instead.
_WSGI_MODULE = '''\
import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
'''


class KeystoneUnavailable(Exception):
    """Keystone is not installed, or did not start."""


def keystone_python() -> str:
    """The Keystone virtualenv's python, or skip (fail when required)."""
    python = os.environ.get(PYTHON_ENV)
    if python and os.access(python, os.X_OK):
        return python
    if python:
        why = '%s=%s is not an executable' % (PYTHON_ENV, python)
    else:
        why = ('Keystone tests need %s, the python of a virtualenv with '
               'keystone and gunicorn (source tools/keystone-env.sh)'
               % PYTHON_ENV)
    if os.environ.get(REQUIRE_ENV) == '1':
        raise KeystoneUnavailable(why)
    raise unittest.SkipTest(why)


@dataclasses.dataclass(frozen=True)
class User:
    """A Keystone user with a role on one project."""

    id: str
    name: str
    password: str
    project_id: str


class Keystone(fixtures.Fixture):
    """Keystone under gunicorn, bootstrapped, with a service user.

    ``admin`` is the bootstrap user (role ``admin`` on project ``admin``
    and on the system); ``service_user`` has role ``service`` on project
    ``service``, as keystonemiddleware's own account in a cloud has.
    """

    def __init__(self):
        super().__init__()
        self.url: str | None = None
        self.admin: User | None = None
        self.service_user: User | None = None

    def setUp(self) -> None:
        """Skip (or fail when required) before anything starts."""
        # Here, not in _setUp: fixtures wraps what _setUp raises, which
        # would turn a skip into an error.
        self.python = keystone_python()
        super().setUp()

    def _setUp(self):
        bindir = os.path.dirname(self.python)
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.port = workloads.free_port(HOST)
        self.url = 'http://%s:%d' % (HOST, self.port)
        self._write_config()
        self.env = dict(os.environ, OS_KEYSTONE_CONFIG_DIR=self.dir)
        manage = [os.path.join(bindir, 'keystone-manage'),
                  '--config-file', self.conf]
        owner = ['--keystone-user', pwd.getpwuid(os.getuid()).pw_name,
                 '--keystone-group', grp.getgrgid(os.getgid()).gr_name]
        # The key repositories do not need the database: all three at
        # once saves seconds on every start.
        self._run_all([manage + ['db_sync'],
                       manage + ['fernet_setup'] + owner,
                       manage + ['credential_setup'] + owner])
        admin_password = secrets.token_urlsafe(16)
        endpoint = self.url + '/v3'
        self._run_all([manage + [
            'bootstrap', '--bootstrap-username', 'admin',
            '--bootstrap-project-name', 'admin',
            '--bootstrap-role-name', 'admin',
            # One argument: a password may begin with '-'.
            '--bootstrap-password=' + admin_password,
            '--bootstrap-region-id', 'RegionOne',
            '--bootstrap-admin-url', endpoint,
            '--bootstrap-internal-url', endpoint,
            '--bootstrap-public-url', endpoint]])
        self._start_server(bindir)
        self.session = requests.Session()
        self.addCleanup(self.session.close)
        self._admin_token = self._password_token(
            'admin', admin_password, {'project': {
                'name': 'admin', 'domain': {'id': DOMAIN}}})
        body = self._call('GET', '/v3/users?name=admin')
        self.admin = User(body['users'][0]['id'], 'admin', admin_password,
                          self.project_id('admin'))
        service = self.make_project(SERVICE_PROJECT)
        self.service_user = self.make_user(SERVICE_USER, service, 'service')

    def _write_config(self) -> None:
        sections = {
            'DEFAULT': {'use_stderr': 'true', 'debug': 'false'},
            'database': {'connection': 'sqlite:///%s/keystone.db'
                         % self.dir},
            'token': {'provider': 'fernet'},
            'fernet_tokens': {'key_repository': self.dir + '/fernet-keys'},
            'fernet_receipts': {
                'key_repository': self.dir + '/fernet-receipts'},
            'credential': {'key_repository': self.dir + '/credential-keys'},
            # Keystone's default of 12 bcrypt rounds costs a quarter
            # second per password check; nothing here needs that.
            'identity': {'password_hash_rounds': '4'},
            # Without a cache each call costs Keystone a quarter second
            # (it rebuilds the caller's token); one worker process keeps
            # an in-memory cache consistent.
            'cache': {'enabled': 'true', 'backend': 'dogpile.cache.memory'},
        }
        lines = []
        for name, values in sections.items():
            lines.append('[%s]' % name)
            lines += ['%s = %s' % item for item in values.items()]
            lines.append('')
        self.conf = workloads.write_config(
            os.path.join(self.dir, 'keystone.conf'), '\n'.join(lines))

    def _run_all(self, commands: list[list[str]]) -> None:
        log_path = os.path.join(self.dir, 'keystone-manage.log')
        with open(log_path, 'ab') as log:
            procs = [subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self.env, cwd=self.dir)
                for argv in commands]
            failed = []
            for argv, proc in zip(commands, procs, strict=True):
                try:
                    code = proc.wait(STEP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
                if code:
                    failed.append('%s (exit %s)' % (argv[3], code))
        if failed:
            raise KeystoneUnavailable('keystone-manage %s failed: %s'
                                      % (', '.join(failed),
                                         _tail(log_path)))

    def _start_server(self, bindir: str) -> None:
        with open(os.path.join(self.dir, 'keystone_app.py'), 'w') as f:
            f.write(_WSGI_MODULE)
        gunicorn = os.path.join(bindir, 'gunicorn')
        argv = [gunicorn, '--bind', '%s:%d' % (HOST, self.port),
                '--workers', '1', '--threads', '4',
                # A broken configuration stops the master at once rather
                # than failing worker after worker.
                '--preload', '--graceful-timeout', '2',
                '--chdir', self.dir, '--pythonpath', self.dir,
                '--log-level', 'warning']
        if _has_option(gunicorn, '--no-control-socket'):
            argv.append('--no-control-socket')
        self.log_path = os.path.join(self.dir, 'keystone.log')
        self.proc = workloads.LocalProcess(
            'keystone', argv + ['keystone_app:application'], self.log_path,
            env=self.env)
        self.proc.start()
        self.addCleanup(self._stop)
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise KeystoneUnavailable(
                    'keystone exited with status %s: %s'
                    % (self.proc.proc.returncode, _tail(self.log_path)))
            try:
                if requests.get(self.url + '/v3', timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise KeystoneUnavailable('keystone did not answer on %s within '
                                  '%ds: %s' % (self.url, STEP_TIMEOUT,
                                               _tail(self.log_path)))

    def _stop(self) -> None:
        # SIGINT is gunicorn's quick shutdown: there is nothing to drain.
        self.proc.signal(signal.SIGINT)
        self.proc.stop()

    # -- Keystone's v3 API --------------------------------------------

    def _call(self, method: str, path: str, body=None,
              expect=(200, 201, 204)) -> dict:
        resp = self.session.request(
            method, self.url + path, json=body, timeout=30,
            headers={'X-Auth-Token': self._admin_token})
        if resp.status_code not in expect:
            raise AssertionError('keystone %s %s -> %d %s' % (
                method, path, resp.status_code, resp.text[:500]))
        return resp.json() if resp.content else {}

    def _password_token(self, name: str, password: str,
                        scope: dict | None) -> str:
        auth = {'identity': {'methods': ['password'], 'password': {
            'user': {'name': name, 'domain': {'id': DOMAIN},
                     'password': password}}}}
        if scope is not None:
            auth['scope'] = scope
        resp = requests.post(self.url + '/v3/auth/tokens',
                             json={'auth': auth}, timeout=30)
        if resp.status_code != 201:
            raise AssertionError('keystone refused a token for %s: %d %s'
                                 % (name, resp.status_code,
                                    resp.text[:500]))
        return resp.headers['X-Subject-Token']

    def project_id(self, name: str) -> str:
        """The id of the project called ``name``."""
        body = self._call('GET', '/v3/projects?name=%s' % name)
        return body['projects'][0]['id']

    def role_id(self, name: str) -> str:
        """The id of the role called ``name``."""
        return self._call('GET', '/v3/roles?name=%s' % name)['roles'][0][
            'id']

    def make_project(self, name: str) -> str:
        """Create a project in the default domain; return its id."""
        body = self._call('POST', '/v3/projects', {'project': {
            'name': name, 'domain_id': DOMAIN}})
        return body['project']['id']

    def make_user(self, name: str, project_id: str, role: str) -> User:
        """Create a user with ``role`` on ``project_id``."""
        password = secrets.token_urlsafe(16)
        # No default project: an unscoped token stays unscoped.
        body = self._call('POST', '/v3/users', {'user': {
            'name': name, 'domain_id': DOMAIN, 'password': password}})
        user_id = body['user']['id']
        self._call('PUT', '/v3/projects/%s/users/%s/roles/%s'
                   % (project_id, user_id, self.role_id(role)))
        return User(user_id, name, password, project_id)

    def token(self, user: User, scope: str = 'project') -> str:
        """A new token of ``user``.

        ``scope``: ``project`` (the user's project), ``system`` (the whole
        deployment; the admin has a role there) or ``unscoped``.
        """
        if scope == 'project':
            wanted = {'project': {'id': user.project_id}}
        elif scope == 'system':
            wanted = {'system': {'all': True}}
        else:
            wanted = None
        return self._password_token(user.name, user.password, wanted)

    def revoke(self, token: str) -> None:
        """Revoke ``token`` in Keystone."""
        resp = self.session.delete(
            self.url + '/v3/auth/tokens', timeout=30,
            headers={'X-Auth-Token': self._admin_token,
                     'X-Subject-Token': token})
        if resp.status_code != 204:
            raise AssertionError('keystone did not revoke the token: %d %s'
                                 % (resp.status_code, resp.text[:500]))

    def authtoken_options(self) -> dict:
        """``[keystone_authtoken]`` of a service that trusts this one."""
        return {
            'www_authenticate_uri': self.url + '/v3',
            'auth_url': self.url + '/v3',
            'auth_type': 'password',
            'username': self.service_user.name,
            'password': self.service_user.password,
            'project_name': SERVICE_PROJECT,
            'user_domain_id': DOMAIN,
            'project_domain_id': DOMAIN,
            # memcached_servers unset: validated tokens are cached in the
            # API's own process.
        }


def _has_option(program: str, option: str) -> bool:
    try:
        out = subprocess.run([program, '--help'], capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return option in out


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:]).strip()
    except OSError:
        return 'no log at %s' % path
