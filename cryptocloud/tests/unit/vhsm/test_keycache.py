"""The record cache (TTL) and the handle cache (LRU) of a vHSM."""

import threading

import testtools

from cryptocloud.tests.unit.vhsm import base
from cryptocloud.vhsm import keycache


class TestRecordCache(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.clock = base.FakeClock()
        self.cache = keycache.RecordCache(2.0, clock=self.clock)

    def test_trusted_for_ttl(self):
        self.assertIsNone(self.cache.get('k'))
        self.cache.put('k', 'record')
        self.assertEqual('record', self.cache.get('k'))
        self.clock.advance(2.0)
        self.assertEqual('record', self.cache.get('k'))
        self.clock.advance(0.001)
        self.assertIsNone(self.cache.get('k'))

    def test_put_restarts_the_ttl(self):
        self.cache.put('k', 'old')
        self.clock.advance(1.5)
        self.cache.put('k', 'new')
        self.clock.advance(1.5)
        self.assertEqual('new', self.cache.get('k'))

    def test_drop(self):
        self.cache.put('k', 'record')
        self.cache.put('other', 'kept')
        self.cache.drop('k')
        self.cache.drop('never-there')
        self.assertIsNone(self.cache.get('k'))
        self.assertEqual('kept', self.cache.get('other'))

    def test_zero_ttl_caches_nothing(self):
        cache = keycache.RecordCache(0, clock=self.clock)
        cache.put('k', 'record')
        self.assertIsNone(cache.get('k'))


class TestHandleCache(testtools.TestCase):

    def test_least_recently_used_is_evicted(self):
        cache = keycache.HandleCache(2)
        cache.put('a', 1, 'a1')
        cache.put('b', 1, 'b1')
        self.assertEqual('a1', cache.get('a', 1))
        cache.put('c', 1, 'c1')
        self.assertEqual(2, len(cache))
        self.assertIsNone(cache.get('b', 1))
        self.assertEqual('a1', cache.get('a', 1))
        self.assertEqual('c1', cache.get('c', 1))

    def test_versions_are_separate(self):
        cache = keycache.HandleCache(10)
        cache.put('a', 1, 'a1')
        cache.put('a', 2, 'a2')
        cache.put('b', 1, 'b1')
        self.assertEqual(('a1', 'a2'), (cache.get('a', 1), cache.get('a', 2)))
        self.assertIsNone(cache.get('a', 3))
        cache.drop_key('a')
        self.assertEqual((None, None, 'b1'), (cache.get('a', 1),
                                              cache.get('a', 2),
                                              cache.get('b', 1)))
        self.assertEqual(1, len(cache))

    def test_size_zero_keeps_nothing(self):
        cache = keycache.HandleCache(0)
        cache.put('a', 1, 'a1')
        self.assertIsNone(cache.get('a', 1))
        self.assertEqual(0, len(cache))

    def test_threads(self):
        cache = keycache.HandleCache(50)
        errors = []

        def work(n):
            try:
                for i in range(2000):
                    cache.put('k%d' % (i % 80), n, i)
                    cache.get('k%d' % ((i + 7) % 80), n)
                    if i % 97 == 0:
                        cache.drop_key('k%d' % (i % 80))
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,))
                   for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertEqual([], errors)
        self.assertLessEqual(len(cache), 50)
