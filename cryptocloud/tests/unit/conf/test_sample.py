"""The sample config in etc/ must match what the generator makes now."""

import os
import subprocess
import sys
import tempfile

import testtools

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..',
                                   '..', '..'))
GENERATOR_CONF = os.path.join(TOP, 'etc', 'cryptocloud',
                              'cryptocloud-config-generator.conf')
SAMPLE = os.path.join(TOP, 'etc', 'cryptocloud', 'cryptocloud.conf.sample')


class TestSampleConfig(testtools.TestCase):

    def test_sample_is_current(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, 'sample.conf')
            subprocess.run(
                [sys.executable, '-m', 'oslo_config.generator',
                 '--config-file', GENERATOR_CONF, '--output-file', out],
                check=True, cwd=TOP, capture_output=True)
            with open(out) as fresh, open(SAMPLE) as committed:
                self.assertEqual(
                    fresh.read(), committed.read(),
                    'etc/cryptocloud/cryptocloud.conf.sample is stale: run '
                    '"tox -e genconfig" and commit the result.')

    def test_every_conf_module_is_listed(self):
        import importlib
        import pkgutil

        from cryptocloud import conf
        from cryptocloud.conf import opts
        listed = {g.name for g, _ in opts.list_opts()}
        for info in pkgutil.iter_modules(conf.__path__):
            if info.name == 'opts':
                continue
            module = importlib.import_module('cryptocloud.conf.' + info.name)
            for group, _ in module.list_opts():
                self.assertIn(group.name, listed,
                              'cryptocloud/conf/opts.py misses %s' % info.name)
