"""A real data plane for functional tests, and tenant-call helpers."""

import base64

import fixtures
import requests

from cryptocloud.common import localplane


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


class DataPlane(fixtures.Fixture):
    """A ``LocalDataPlane`` with debug logs, stopped at cleanup."""

    def __init__(self, keystore_url: str, *, vhsms: int = 2,
                 projects: tuple[str, ...] = ('project-a', 'project-b'),
                 key_cache_ttl: float = 0.5):
        super().__init__()
        self._args = dict(vhsms=vhsms, projects=projects,
                          key_cache_ttl=key_cache_ttl, debug=True)
        self.keystore_url = keystore_url

    def _setUp(self):
        workdir = self.useFixture(fixtures.TempDir()).path
        self.plane = localplane.LocalDataPlane(workdir, self.keystore_url,
                                               **self._args)
        self.addCleanup(self.plane.stop)
        self.plane.start()
        self.session = requests.Session()
        self.addCleanup(self.session.close)

    def __getattr__(self, name):
        # Expose the plane's files, processes and helpers directly.
        if name == 'plane':
            raise AttributeError(name)
        return getattr(self.plane, name)

    def call(self, method: str, path: str, project: str = 'project-a',
             body=None, token: str | None = None, **kwargs):
        """One tenant REST call; returns the requests Response."""
        headers = kwargs.pop('headers', {})
        tok = token if token is not None else self.tokens[project]
        if tok:
            headers['Authorization'] = 'Bearer ' + tok
        return self.session.request(method, self.url + path, json=body,
                                    headers=headers, timeout=30, **kwargs)

    def ok(self, method: str, path: str, project: str = 'project-a',
           body=None, expect: int | tuple = (200, 201)) -> dict:
        """A call that must succeed; returns the JSON body."""
        resp = self.call(method, path, project, body)
        expected = expect if isinstance(expect, tuple) else (expect,)
        if resp.status_code not in expected:
            raise AssertionError('%s %s -> %d %s' % (
                method, path, resp.status_code, resp.text[:500]))
        return resp.json()
