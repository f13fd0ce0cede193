"""The committed OpenAPI document matches the code and the router."""

import os

import testtools
import yaml

from cryptocloud.cryptoservice import app as app_mod
from cryptocloud.cryptoservice import openapi
from cryptocloud.tests.unit.cryptoservice import fakes

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__),
                                    '..', '..', '..', '..'))
COMMITTED = os.path.join(ROOT, openapi.DEFAULT_OUTFILE)
REGENERATE = ('%s is out of date; regenerate it with: python -m '
              'cryptocloud.cryptoservice.openapi %s'
              % (openapi.DEFAULT_OUTFILE, openapi.DEFAULT_OUTFILE))


class TestOpenAPI(testtools.TestCase):

    def committed(self):
        with open(COMMITTED, encoding='utf-8') as f:
            return f.read()

    def test_committed_file_is_fresh(self):
        self.assertTrue(self.committed() == openapi.render(), REGENERATE)

    def test_routes_match_the_app(self):
        doc = yaml.safe_load(self.committed())
        documented = {(method.upper(), path)
                      for path, ops in doc['paths'].items()
                      for method in ops}
        app = app_mod.CryptoServiceApp(
            fakes.FakeVHSMClient(), None, metrics=None,
            max_body_size=1024, batch_max_items=2)
        served = app.routes()
        self.assertEqual(set(), served - documented,
                         'served but not documented; ' + REGENERATE)
        self.assertEqual(set(), documented - served,
                         'documented but not served; ' + REGENERATE)

    def test_document_shape(self):
        doc = openapi.build_document()
        self.assertEqual('3.0.3', doc['openapi'])
        ids = [op['operationId'] for ops in doc['paths'].values()
               for op in ops.values()]
        self.assertEqual(len(ids), len(set(ids)))
        refs = set()

        def walk(node):
            if isinstance(node, dict):
                if '$ref' in node:
                    refs.add(node['$ref'].rsplit('/', 1)[1])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)
        walk(doc)
        self.assertEqual(set(), refs - set(doc['components']['schemas']))
        body = doc['paths']['/v1/keys/{key_id}/encrypt']['post'][
            'requestBody']['content']['application/json']['schema']
        self.assertIs(False, body['additionalProperties'])
        self.assertEqual('byte', body['properties']['plaintext']['format'])

    def test_documents_every_status_the_routes_give(self):
        paths = openapi.build_document()['paths']
        # NotExportable and KeyNameExists: found by the API fuzz test.
        self.assertIn('403', paths['/v1/keys/{key_id}/export']['get'][
            'responses'])
        create = paths['/v1/keys']['post']['responses']
        self.assertIn('name', create['409']['description'])
        self.assertNotIn('403', paths['/v1/keys/{key_id}']['get'][
            'responses'])

    def test_main_writes_the_file(self):
        out = os.path.join(self.useFixture(
            __import__('fixtures').TempDir()).path, 'api.yaml')
        openapi.main([out])
        with open(out, encoding='utf-8') as f:
            self.assertEqual(openapi.render(), f.read())
