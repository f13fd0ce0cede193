"""Argument checks of internal-protocol operations."""

import testtools

from cryptocloud.common import exception
from cryptocloud.vhsm import argcheck


class TestArgcheck(testtools.TestCase):

    def test_get(self):
        self.assertEqual(b'x', argcheck.get({'a': b'x'}, 'a', bytes))
        self.assertEqual('d', argcheck.get({}, 'a', str, default='d'))
        self.assertEqual('d', argcheck.get({'a': None}, 'a', str,
                                           default='d'))
        self.assertIsNone(argcheck.get({}, 'a', str))
        self.assertEqual('x', argcheck.get({'a': 'x'}, 'a', (str, bytes)))

    def test_required(self):
        for args in ({}, {'a': None}):
            exc = self.assertRaises(exception.InvalidInput, argcheck.get,
                                    args, 'a', str, required=True)
            self.assertIn('a is required', str(exc))
        self.assertEqual('', argcheck.get({'a': ''}, 'a', str,
                                          required=True))

    def test_wrong_type(self):
        for value, kind in (('x', bytes), (b'x', str), (1, str),
                            (1.0, int), ([], dict), (True, int),
                            (False, int), (True, (int,))):
            exc = self.assertRaises(exception.InvalidInput, argcheck.get,
                                    {'a': value}, 'a', kind)
            self.assertIn(type(value).__name__, str(exc))
        self.assertTrue(argcheck.get({'a': True}, 'a', bool))

    def test_max_len(self):
        self.assertEqual('abc', argcheck.get({'a': 'abc'}, 'a', str,
                                             max_len=3))
        exc = self.assertRaises(exception.InvalidInput, argcheck.get,
                                {'a': 'secret'}, 'a', str, max_len=3)
        self.assertNotIn('secret', str(exc))

    def test_get_int(self):
        self.assertEqual(5, argcheck.get_int({'n': 5}, 'n', minimum=1,
                                             maximum=5))
        self.assertEqual(7, argcheck.get_int({}, 'n', default=7))
        self.assertIsNone(argcheck.get_int({}, 'n', minimum=1))
        for value in (0, 6, -1, 2 ** 64):
            self.assertRaises(exception.InvalidInput, argcheck.get_int,
                              {'n': value}, 'n', minimum=1, maximum=5)
        for value in (True, 1.0, '1'):
            self.assertRaises(exception.InvalidInput, argcheck.get_int,
                              {'n': value}, 'n')
        self.assertRaises(exception.InvalidInput, argcheck.get_int, {},
                          'n', required=True)

    def test_get_choice(self):
        self.assertEqual('B', argcheck.get_choice({'c': 'B'}, 'c',
                                                  ('A', 'B')))
        self.assertEqual('A', argcheck.get_choice({}, 'c', ('A', 'B'),
                                                  default='A'))
        for value in ('b', 'C', '', 1, b'B'):
            self.assertRaises(exception.InvalidInput, argcheck.get_choice,
                              {'c': value}, 'c', ('A', 'B'))
        # A map's keys are its choices.
        self.assertEqual('X', argcheck.get_choice({'c': 'X'}, 'c',
                                                  {'X': 1}))
