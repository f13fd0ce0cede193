"""The key state table in cryptocloud.common.states."""

import dataclasses

import testtools

from cryptocloud.common import exception
from cryptocloud.common import states

EVENTS = (states.USE, states.ROTATE, states.CONFIGURE, states.ENABLE,
          states.DISABLE, states.SCHEDULE_DELETION, states.CANCEL_DELETION,
          states.PURGE)


class TestKeyMachine(testtools.TestCase):

    machine = states.KEY_MACHINE

    def test_every_state_and_target_is_known(self):
        known = set(states.KEY_STATES) | {states.DELETED}
        for (state, event), target in self.machine.transitions.items():
            self.assertIn(state, states.KEY_STATES)
            self.assertIn(event, EVENTS)
            self.assertIn(target, known)
        self.assertEqual(known, self.machine.states)

    def test_deleted_is_final(self):
        self.assertEqual(frozenset(), self.machine.sources('anything'))
        for event in EVENTS:
            self.assertFalse(self.machine.allows(states.DELETED, event))
        self.assertEqual([states.PENDING_DELETION],
                         [s for (s, _), t in self.machine.transitions.items()
                          if t == states.DELETED])

    def test_every_event_has_a_source(self):
        for event in EVENTS:
            self.assertTrue(self.machine.sources(event), event)

    def test_sources(self):
        self.assertEqual({states.ENABLED}, self.machine.sources(states.USE))
        self.assertEqual({states.ENABLED},
                         self.machine.sources(states.ROTATE))
        self.assertEqual({states.ENABLED, states.DISABLED},
                         self.machine.sources(states.CONFIGURE))
        self.assertEqual({states.ENABLED, states.DISABLED},
                         self.machine.sources(states.ENABLE))
        self.assertEqual({states.ENABLED, states.DISABLED},
                         self.machine.sources(states.DISABLE))
        self.assertEqual({states.ENABLED, states.DISABLED},
                         self.machine.sources(states.SCHEDULE_DELETION))
        self.assertEqual({states.PENDING_DELETION},
                         self.machine.sources(states.CANCEL_DELETION))
        self.assertEqual({states.PENDING_DELETION},
                         self.machine.sources(states.PURGE))
        self.assertIsInstance(self.machine.sources(states.USE), frozenset)

    def test_sources_agree_with_allows(self):
        for event in EVENTS:
            for state in states.KEY_STATES:
                self.assertEqual(state in self.machine.sources(event),
                                 self.machine.allows(state, event))

    def test_next_state(self):
        expected = {
            (states.ENABLED, states.DISABLE): states.DISABLED,
            (states.DISABLED, states.ENABLE): states.ENABLED,
            (states.ENABLED, states.SCHEDULE_DELETION):
                states.PENDING_DELETION,
            (states.PENDING_DELETION, states.CANCEL_DELETION):
                states.DISABLED,
            (states.PENDING_DELETION, states.PURGE): states.DELETED,
            (states.ENABLED, states.USE): states.ENABLED,
            (states.DISABLED, states.CONFIGURE): states.DISABLED,
        }
        for (state, event), target in expected.items():
            self.assertEqual(target, self.machine.next_state(state, event))

    def test_usable_only_when_enabled(self):
        self.assertEqual([states.ENABLED],
                         [s for s in states.KEY_STATES
                          if self.machine.allows(s, states.USE)])

    def test_pending_deletion_allows_only_cancel_and_purge(self):
        self.assertEqual({states.CANCEL_DELETION, states.PURGE},
                         {e for e in EVENTS if self.machine.allows(
                             states.PENDING_DELETION, e)})

    def test_refused_transitions_raise_invalid_key_state(self):
        refused = 0
        for state in states.KEY_STATES + (states.DELETED, 'BOGUS'):
            for event in EVENTS + ('bogus',):
                if self.machine.allows(state, event):
                    continue
                exc = self.assertRaises(exception.InvalidKeyState,
                                        self.machine.next_state, state,
                                        event, resource_id='key-1')
                self.assertEqual(409, exc.code)
                self.assertEqual({'key_id': 'key-1', 'state': state,
                                  'action': event}, exc.kwargs)
                self.assertIn('key-1', exc.message)
                self.assertIn(state, exc.message)
                refused += 1
        self.assertGreater(refused, 20)
        # No context is chained from the dict lookup.
        exc = self.assertRaises(exception.InvalidKeyState,
                                self.machine.next_state, states.ENABLED,
                                states.CANCEL_DELETION)
        self.assertTrue(exc.__suppress_context__)

    def test_table_is_read_only(self):
        self.assertRaises(dataclasses.FrozenInstanceError, setattr,
                          self.machine, 'name', 'x')

    def test_small_machine(self):
        machine = states.StateMachine('door', {('open', 'close'): 'closed',
                                               ('closed', 'open'): 'open'})
        self.assertEqual({'open', 'closed'}, machine.states)
        self.assertEqual('closed', machine.next_state('open', 'close'))
        self.assertRaises(exception.InvalidState, machine.next_state,
                          'open', 'open')
        self.assertEqual(frozenset({'closed'}), machine.sources('open'))
