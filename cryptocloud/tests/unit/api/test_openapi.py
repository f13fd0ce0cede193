"""The committed OpenAPI document matches the route table and the app."""

import os

import fixtures
import testtools
import yaml

from cryptocloud.api import openapi
from cryptocloud.api import routes
from cryptocloud.api.controllers import base as cbase
from cryptocloud.api.controllers import root  # noqa: F401  (binds routes)
from cryptocloud.tests.unit.api import base

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__),
                                    '..', '..', '..', '..'))
COMMITTED = os.path.join(ROOT, openapi.DEFAULT_OUTFILE)
REGENERATE = ('%s is out of date; regenerate it with: python -m '
              'cryptocloud.api.openapi %s'
              % (openapi.DEFAULT_OUTFILE, openapi.DEFAULT_OUTFILE))


class TestOpenAPI(testtools.TestCase):

    def test_committed_file_is_fresh(self):
        with open(COMMITTED, encoding='utf-8') as f:
            self.assertTrue(f.read() == openapi.render(), REGENERATE)

    def test_every_route_has_one_handler(self):
        self.assertEqual({r.name for r in routes.ROUTES},
                         set(cbase.HANDLERS))

    def test_document_shape(self):
        doc = openapi.build_document()
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
        body = doc['paths']['/v1/services']['post']['requestBody'][
            'content']['application/json']['schema']
        self.assertIs(False, body['additionalProperties'])
        self.assertEqual('202', next(iter(
            doc['paths']['/v1/services']['post']['responses'])))

    def test_main_writes_the_file(self):
        out = os.path.join(self.useFixture(fixtures.TempDir()).path,
                           'api.yaml')
        openapi.main([out])
        with open(out, encoding='utf-8') as f:
            self.assertEqual(yaml.safe_load(openapi.render()),
                             yaml.safe_load(f.read()))


class TestDocumentedRoutesAreServed(base.APITestCase):

    def test_each_documented_route_reaches_its_handler(self):
        doc = yaml.safe_load(openapi.render())
        ids = {'{node_id}': '1', '{association_id}': '1',
               '{credential_id}': 'a' * 32}
        for path, ops in doc['paths'].items():
            concrete = path
            for name, value in ids.items():
                concrete = concrete.replace(name, value)
            while '{' in concrete:
                start = concrete.index('{')
                end = concrete.index('}')
                concrete = (concrete[:start]
                            + '00000000-0000-4000-8000-000000000000'
                            + concrete[end + 1:])
            for method in ops:
                resp = self.call(method.upper(), concrete)
                if resp.status_int >= 400:
                    self.assertNotIn(resp.json['error']['type'],
                                     ('RouteNotFound', 'MethodNotAllowed'),
                                     (method, path))
