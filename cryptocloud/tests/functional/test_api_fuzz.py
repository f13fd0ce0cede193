"""Property-based fuzz of the tenant API against a real data plane.

schemathesis reads the committed OpenAPI document
(api-ref/cryptoservice-v1.yaml) and hypothesis generates requests for
every operation in it: schema-valid ones and, in negative mode, ones that
break the schema on purpose.  They go over HTTP to real vHSM and service
processes with a SQLite keystore.  A key id drawn at random names no key,
so path parameters are also drawn from keys made before the fuzz: those
requests get past the router and the key lookup into the vHSM.

With the tenant's credential every answer must be below 500, have a
status code, content type and body the document declares, and reject
data that breaks the schema.  Without a valid credential every secured
operation must answer 401.

Runs are derandomized, so CI sends the same requests every time (only
key ids and tokens differ).  A failure prints a curl line reproducing it.
"""

import collections
import os

import hypothesis
import schemathesis
import testtools
from hypothesis import strategies as st
from schemathesis import checks as st_checks
from testtools import content

from cryptocloud.cryptoservice import app as app_mod
from cryptocloud.tests import db as test_db
from cryptocloud.tests.functional import dataplane

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__),
                                    '..', '..', '..'))
API_DOC = os.path.join(ROOT, 'api-ref', 'cryptoservice-v1.yaml')

# Examples per operation (fewer when an operation has fewer distinct
# requests).  The whole file takes about 25 s on an idle two-core machine.
EXAMPLES = 30
UNAUTHENTICATED_EXAMPLES = 8

# schemathesis' names for the checks (as in ``st run --checks``).
CHECKS = ('not_a_server_error', 'status_code_conformance',
          'content_type_conformance', 'response_schema_conformance',
          'negative_data_rejection')

KEYS = (
    {'algorithm': 'SM2'},
    {'algorithm': 'SM4_GCM'},
    {'algorithm': 'HMAC_SM3'},
    {'algorithm': 'RSA_2048', 'purpose': 'encrypt'},
    {'algorithm': 'EC_P256'},
)

# Operations that change a key's state: fuzzed after the others, so
# that disable and schedule-deletion do not turn the crypto calls into
# 409s.  Keys are revived before every operation as well.
_STATE_CHANGING = ('PATCH /v1/keys/{key_id}',
                   'POST /v1/keys/{key_id}/rotate',
                   'POST /v1/keys/{key_id}/enable',
                   'POST /v1/keys/{key_id}/cancel-deletion',
                   'POST /v1/keys/{key_id}/disable',
                   'POST /v1/keys/{key_id}/schedule-deletion')

_CREDENTIAL_HEADERS = ('authorization', 'x-auth-token')

_MODES = (schemathesis.GenerationMode.POSITIVE,
          schemathesis.GenerationMode.NEGATIVE)


def _settings(max_examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples, derandomize=True, database=None,
        deadline=None, print_blob=False,
        # No shrinking: every request hits a stateful live stack, so a
        # shrunk example may not fail again; the report carries the
        # failing request as a curl line anyway.
        phases=(hypothesis.Phase.explicit, hypothesis.Phase.generate),
        suppress_health_check=(hypothesis.HealthCheck.too_slow,
                               hypothesis.HealthCheck.data_too_large,
                               hypothesis.HealthCheck.filter_too_much,
                               hypothesis.HealthCheck.large_base_example))


def _operations(schema) -> list:
    ops = [result.ok() for result in schema.get_all_operations()]
    # Stable order: the document's, state-changing operations last.
    return sorted(ops, key=lambda op: op.label in _STATE_CHANGING)


# Errors only a vHSM holding the key gives.
_KEY_ERRORS = frozenset(('IncompatibleKeyUsage', 'InvalidKeyState',
                         'KeyVersionNotFound', 'KeyVersionTooOld',
                         'NotExportable', 'DecryptionFailed'))


def _answered_by_a_key(response) -> bool:
    """True when a request got through to a key in a vHSM."""
    if 200 <= response.status_code < 300:
        return True
    try:
        return response.json()['error']['type'] in _KEY_ERRORS
    except (ValueError, KeyError, TypeError):
        return False


def _secured(op) -> bool:
    # An operation's own "security: []" opts out of the global default.
    return op.definition.raw.get('security', [None]) != []


class TestAPIFuzz(testtools.TestCase):

    def setUp(self):
        super().setUp()
        database = self.useFixture(test_db.Database('sqlite'))
        self.dp = self.useFixture(dataplane.DataPlane(
            database.url, projects=('project-a',)))
        self.headers = {'Authorization':
                        'Bearer ' + self.dp.tokens['project-a']}
        self.key_ids = [self.dp.ok('POST', '/v1/keys', body=body)['key_id']
                        for body in KEYS]
        self.schema = schemathesis.openapi.from_path(API_DOC)
        st_checks.load_all_checks()
        self.checks = st_checks.CHECKS.get_by_names(CHECKS)

    def _revive(self):
        """Undo what earlier operations did to the keys' state."""
        for key_id in self.key_ids:
            for action in ('cancel-deletion', 'enable'):
                resp = self.dp.call('POST', '/v1/keys/%s/%s'
                                    % (key_id, action))
                # 409: the key was not in the state the action undoes.
                self.assertIn(resp.status_code, (200, 409), resp.text)

    def _strategy(self, op, modes=_MODES):
        """Cases for ``op``; most name one of the keys made in setUp."""
        if op.get_parameter('key_id', 'path') is None:
            return st.one_of([op.as_strategy(generation_mode=m)
                              for m in modes])
        # A random (positive) or broken (negative) key id is refused
        # before the vHSM, so it gets one branch of its own.
        strategies = [op.as_strategy(generation_mode=modes[0])]
        real = st.sampled_from(self.key_ids)
        for mode in modes:
            strategies.append(real.flatmap(
                lambda key_id, mode=mode: op.as_strategy(
                    generation_mode=mode,
                    path_parameters={'key_id': key_id})))
        return st.one_of(strategies)

    def _fuzz(self, op, cases, max_examples, check, credentials=None):
        """Send generated cases; ``check(case, response)`` each answer.

        ``credentials`` draws the headers that authenticate a request
        (default: the tenant's credential).  Returns the status codes
        seen, with under "key" how many answers came from a real key,
        and a failure message or None.
        """
        if credentials is None:
            credentials = st.just(self.headers)
        statuses = collections.Counter()
        by_key = op.get_parameter('key_id', 'path') is not None

        @_settings(max_examples)
        @hypothesis.given(case=cases, headers=credentials)
        def run(case, headers):
            # Send only the drawn credential, not what schemathesis
            # made up for the document's security schemes.
            for name in list(case.headers or {}):
                if name.lower() in _CREDENTIAL_HEADERS:
                    del case.headers[name]
            response = case.call(base_url=self.dp.url,
                                 session=self.dp.session, headers=headers,
                                 timeout=30)
            statuses[response.status_code] += 1
            if by_key and _answered_by_a_key(response):
                statuses['key'] += 1
            check(case, response)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:
            return statuses, '%s\n%s: %s' % (op.label, type(exc).__name__,
                                             exc)
        return statuses, None

    def _report(self, name, seen, failures):
        lines = ['%-45s %s' % (label, dict(codes))
                 for label, codes in seen.items()]
        self.addDetail(name, content.text_content('\n'.join(lines)))
        if failures:
            self.fail('%d operation(s) failed:\n\n%s'
                      % (len(failures), '\n\n'.join(failures)))

    def test_tenant_fuzz(self):
        """With a valid credential: no 5xx, and answers match the doc."""
        seen = {}
        failures = []
        for op in _operations(self.schema):
            checks = self.checks
            if op.label == 'POST /v1/batch':
                # Items are validated one by one and a bad item is
                # answered in its own results[] slot, so a batch with
                # items the document's oneOf refuses is still a 200.
                checks = [c for c in checks
                          if c.__name__ != 'negative_data_rejection']

            def check(case, response, checks=checks):
                case.validate_response(response, checks=checks,
                                       headers=self.headers)
            self._revive()
            seen[op.label], failure = self._fuzz(
                op, self._strategy(op), EXAMPLES, check)
            if failure:
                failures.append(failure)
        self._report('statuses', seen, failures)
        # The fuzz got past the validators to the keys in the vHSMs
        # ("key": answers that only a vHSM holding the key gives).
        for label in ('GET /v1/keys/{key_id}',
                      'GET /v1/keys/{key_id}/public-key',
                      'GET /v1/keys/{key_id}/export',
                      'POST /v1/keys/{key_id}/encrypt',
                      'POST /v1/keys/{key_id}/hmac',
                      'POST /v1/keys/{key_id}/datakey',
                      'POST /v1/keys/{key_id}/rotate'):
            self.assertGreater(seen[label]['key'], 0, label)

    def test_fuzz_without_valid_credentials(self):
        """No credential or a wrong one: 401 on every secured operation."""
        token = self.dp.tokens['project-a']
        wrong_secret = token[:-1] + ('A' if token[-1] != 'A' else 'B')
        credentials = st.sampled_from([
            {},
            {'Authorization': ''},
            {'Authorization': 'Bearer'},
            {'Authorization': 'Bearer ' + wrong_secret},
            {'Authorization': 'Bearer not-a.credential'},
            {'Authorization': 'Basic ' + dataplane.b64(b'project-a:x')},
            {'X-Auth-Token': wrong_secret},
        ])
        server_error = st_checks.CHECKS.get_by_names(['not_a_server_error'])
        seen = {}
        failures = []
        for op in _operations(self.schema):
            def check(case, response, op=op):
                case.validate_response(response, checks=server_error)
                if _secured(op) and response.status_code != 401:
                    raise AssertionError(
                        '%s answered %d without a valid credential: %s'
                        % (op.label, response.status_code,
                           response.text[:300]))
            # Schema-valid requests only: a malformed key id or an
            # oversized body may be refused (404, 413) before the
            # credential is looked at, which is fine.
            seen[op.label], failure = self._fuzz(
                op, self._strategy(op, _MODES[:1]),
                UNAUTHENTICATED_EXAMPLES, check, credentials)
            if failure:
                failures.append(failure)
        self._report('statuses', seen, failures)
        secured = [op.label for op in _operations(self.schema)
                   if _secured(op)]
        # The document and the route table agree on what needs a
        # credential.
        self.assertEqual(sum(route.auth for route in app_mod.ROUTES),
                         len(secured))
        for label in secured:
            self.assertEqual({401}, set(seen[label]), label)
