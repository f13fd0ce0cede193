"""States and transitions of every resource, declared as data.

Each table maps ``(state, event) -> new state``.  Code never assigns a state
directly: it asks the table whether an event is allowed from the current
state and which state follows, and writes that with a conditional UPDATE
that names the states the event may start from.
"""

import dataclasses

from cryptocloud.common import exception


@dataclasses.dataclass(frozen=True)
class StateMachine:
    """A small finite state machine: transitions plus a name for errors."""

    name: str
    transitions: dict[tuple[str, str], str]

    def next_state(self, state: str, event: str, *, resource_id: str = '',
                   ) -> str:
        """Return the state that follows ``event``; raise when not allowed."""
        try:
            return self.transitions[(state, event)]
        except KeyError:
            if self.name == 'key':
                raise exception.InvalidKeyState(
                    key_id=resource_id, state=state, action=event) from None
            raise exception.InvalidState(
                kind=self.name, resource_id=resource_id, state=state,
                action=event) from None

    def allows(self, state: str, event: str) -> bool:
        return (state, event) in self.transitions

    def sources(self, event: str) -> frozenset[str]:
        """States from which ``event`` is allowed (for conditional updates)."""
        return frozenset(s for (s, e) in self.transitions if e == event)

    @property
    def states(self) -> frozenset[str]:
        return frozenset(s for pair in self.transitions for s in
                         (pair[0], self.transitions[pair]))


# Tenant keys (held in the vHSM keystore).
ENABLED = 'ENABLED'
DISABLED = 'DISABLED'
PENDING_DELETION = 'PENDING_DELETION'
DELETED = 'DELETED'  # the row is gone; used only as a transition target

# Events on keys.  USE covers every cryptographic operation; DECRYPT also
# covers verify and rewrap's first half, which stay possible while a key is
# enabled only (a disabled key does nothing, as in other KMSs).
USE = 'use'
ROTATE = 'rotate'
CONFIGURE = 'configure'
ENABLE = 'enable'
DISABLE = 'disable'
SCHEDULE_DELETION = 'schedule_deletion'
CANCEL_DELETION = 'cancel_deletion'
PURGE = 'purge'

KEY_MACHINE = StateMachine('key', {
    (ENABLED, USE): ENABLED,
    (ENABLED, ROTATE): ENABLED,
    (ENABLED, CONFIGURE): ENABLED,
    (DISABLED, CONFIGURE): DISABLED,
    (ENABLED, ENABLE): ENABLED,
    (DISABLED, ENABLE): ENABLED,
    (ENABLED, DISABLE): DISABLED,
    (DISABLED, DISABLE): DISABLED,
    (ENABLED, SCHEDULE_DELETION): PENDING_DELETION,
    (DISABLED, SCHEDULE_DELETION): PENDING_DELETION,
    (PENDING_DELETION, CANCEL_DELETION): DISABLED,
    (PENDING_DELETION, PURGE): DELETED,
})

KEY_STATES = (ENABLED, DISABLED, PENDING_DELETION)


# -- control plane ----------------------------------------------------------

# Compute nodes.  ``enabled`` is a separate operator flag; UP/DOWN is
# liveness from heartbeats.
NODE_UP = 'UP'
NODE_DOWN = 'DOWN'

NODE_MACHINE = StateMachine('node', {
    (NODE_UP, 'heartbeat'): NODE_UP,
    (NODE_DOWN, 'heartbeat'): NODE_UP,
    (NODE_UP, 'silent'): NODE_DOWN,
    (NODE_DOWN, 'silent'): NODE_DOWN,
})

# Workloads: vHSMs and service instances, one row per process/container.
BUILDING = 'BUILDING'
ACTIVE = 'ACTIVE'
ERROR = 'ERROR'
DELETING = 'DELETING'
# A cold-standby replica: ready to run (files, image, container, vHSM
# association) but not running; promoted when its primary fails.
STANDBY = 'STANDBY'

WORKLOAD_MACHINE = StateMachine('workload', {
    (BUILDING, 'prepared'): STANDBY,
    (STANDBY, 'prepared'): STANDBY,
    (STANDBY, 'promote'): BUILDING,
    (STANDBY, 'fail'): ERROR,
    (STANDBY, 'delete'): DELETING,
    (BUILDING, 'built'): ACTIVE,
    (BUILDING, 'fail'): ERROR,
    (ACTIVE, 'fail'): ERROR,
    (ACTIVE, 'built'): ACTIVE,
    (ERROR, 'built'): ACTIVE,      # the compute node saw it healthy again
    (ERROR, 'fail'): ERROR,
    (BUILDING, 'delete'): DELETING,
    (ACTIVE, 'delete'): DELETING,
    (ERROR, 'delete'): DELETING,
    (DELETING, 'delete'): DELETING,
    (DELETING, 'deleted'): DELETED,
})

# vHSM groups and services (the resources tenants and admins ask for).
CREATING = 'CREATING'
UPDATING = 'UPDATING'

RESOURCE_MACHINE = StateMachine('resource', {
    (CREATING, 'done'): ACTIVE,
    (CREATING, 'fail'): ERROR,
    (ACTIVE, 'resize'): UPDATING,
    (ERROR, 'resize'): UPDATING,
    (UPDATING, 'done'): ACTIVE,
    (UPDATING, 'fail'): ERROR,
    (ACTIVE, 'reconcile'): UPDATING,
    (ERROR, 'reconcile'): UPDATING,
    (CREATING, 'delete'): DELETING,
    (ACTIVE, 'delete'): DELETING,
    (UPDATING, 'delete'): DELETING,
    (ERROR, 'delete'): DELETING,
    (DELETING, 'delete'): DELETING,
    (DELETING, 'deleted'): DELETED,
})

# Tasks: one per mutating request.  Every task ends SUCCEEDED or FAILED.
PENDING = 'PENDING'
RUNNING = 'RUNNING'
SUCCEEDED = 'SUCCEEDED'
FAILED = 'FAILED'

TASK_MACHINE = StateMachine('task', {
    (PENDING, 'start'): RUNNING,
    (PENDING, 'fail'): FAILED,
    (RUNNING, 'start'): RUNNING,   # a conductor resuming an orphaned task
    (RUNNING, 'succeed'): SUCCEEDED,
    (RUNNING, 'fail'): FAILED,
})

TASK_FINAL_STATES = (SUCCEEDED, FAILED)
