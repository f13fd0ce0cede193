"""The sample policy file in etc/ must match the rules in code."""

import os
import subprocess
import sys
import tempfile

import testtools

from cryptocloud.api import policy
from cryptocloud.api import routes

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..',
                                   '..', '..'))
GENERATOR_CONF = os.path.join(TOP, 'etc', 'cryptocloud',
                              'cryptocloud-policy-generator.conf')
SAMPLE = os.path.join(TOP, 'etc', 'cryptocloud', 'policy.yaml.sample')


class TestPolicySample(testtools.TestCase):

    def test_sample_is_current(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, 'policy.yaml')
            subprocess.run(
                [sys.executable, '-c',
                 'import sys; from oslo_policy import generator; '
                 'sys.exit(generator.generate_sample())',
                 '--config-file', GENERATOR_CONF, '--output-file', out],
                check=True, cwd=TOP, capture_output=True)
            with open(out) as fresh, open(SAMPLE) as committed:
                self.assertEqual(
                    fresh.read(), committed.read(),
                    'etc/cryptocloud/policy.yaml.sample is stale: run '
                    '"tox -e genpolicy" and commit the result.')

    def test_every_route_names_a_registered_rule(self):
        names = {rule.name for rule in policy.list_rules()}
        for route in routes.ROUTES:
            if route.policy:
                self.assertIn(route.policy, names, route.name)
