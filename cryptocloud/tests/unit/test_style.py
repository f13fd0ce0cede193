"""Style gates that run with the unit tests, so CI counts them."""

import os
import re
import shutil
import subprocess
import sys

import testtools

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..',
                                   '..'))
EVENTLET = re.compile(r'^\s*(import eventlet|from eventlet|.*monkey_patch\()',
                      re.M)


def _python_files(*dirs):
    for d in dirs:
        for root, _, files in os.walk(os.path.join(TOP, d)):
            for name in files:
                if name.endswith('.py'):
                    yield os.path.join(root, name)


class TestStyle(testtools.TestCase):

    def test_ruff_is_clean(self):
        ruff = shutil.which('ruff', path=os.path.dirname(sys.executable))
        ruff = ruff or shutil.which('ruff')
        if ruff is None:
            self.skipTest('ruff is not installed')
        result = subprocess.run(
            [ruff, 'check', 'cryptocloud', 'db_migrations', 'bench', 'tools'],
            cwd=TOP, capture_output=True, text=True)
        self.assertEqual(0, result.returncode, result.stdout[-4000:])

    def test_no_eventlet_or_monkey_patching(self):
        for path in _python_files('cryptocloud', 'bench', 'tools'):
            if path == os.path.abspath(__file__):
                continue
            with open(path) as f:
                self.assertIsNone(EVENTLET.search(f.read()),
                                  '%s uses eventlet' % path)
