"""What every workflow gets: the task, the database, compute, the
scheduler, a deadline, and the rules for taking hold of a resource.

Workflows converge: they compare what the rows say should exist with
what does and close the gap, so running one again after a conductor died
half-way finishes the job instead of doing it twice.
"""

import contextlib
import dataclasses
import datetime
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator

from oslo_log import log as logging

from cryptocloud.common import context as cc_context
from cryptocloud.common import exception
from cryptocloud.common import states

LOG = logging.getLogger(__name__)

# Longest task error or status reason written to a row.
MAX_REASON = 1000

M = states.RESOURCE_MACHINE


class WorkflowError(exception.CryptoCloudException):
    """A workflow cannot finish; the message is the task's error."""

    msg_fmt = '%(reason)s'


class TaskLost(Exception):
    """This conductor no longer holds the task's lease: stop, write nothing.
    """


def one_line(text: object, limit: int = MAX_REASON) -> str:
    """``text`` on one line, shortened to ``limit`` characters."""
    line = ' '.join(str(text).split())
    return line if len(line) <= limit else line[:limit - 3] + '...'


def reason_of(exc: BaseException) -> str:
    """A one-line reason for ``exc``: our message, or the class and text."""
    if isinstance(exc, exception.CryptoCloudException):
        return one_line(exc.message)
    return one_line('%s: %s' % (type(exc).__name__, exc))


def utcnow() -> datetime.datetime:
    """Naive UTC now, as the control database stores times."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class Lease:
    """Whether the running conductor still holds a task (set by renewals)."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self._lost = threading.Event()

    def lose(self) -> None:
        """Record that a renewal failed: another conductor took the task."""
        self._lost.set()

    @property
    def lost(self) -> bool:
        """True once a renewal failed."""
        return self._lost.is_set()


@dataclasses.dataclass
class WorkflowContext:
    """One task being run: its row, collaborators and deadline."""

    db: object
    compute: object
    scheduler: object
    task: dict
    lease: Lease
    provision_timeout: float
    poll_interval: float = 0.5
    ctxt: cc_context.RequestContext = dataclasses.field(
        default_factory=cc_context.get_admin_context)
    started: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def resource_id(self) -> str:
        """The id of the vHSM group or service the task is about."""
        return self.task['resource_id']

    @property
    def params(self) -> dict:
        """The task's parameters (never secrets)."""
        return self.task.get('params') or {}

    @property
    def deadline(self) -> float:
        """Monotonic time by which the workflow must have converged."""
        return self.started + self.provision_timeout

    def check(self) -> None:
        """Stop (TaskLost) when another conductor took the task over."""
        if self.lease.lost:
            raise TaskLost(self.task['id'])

    def wait_until(self, ready: Callable[[], bool], what: str) -> None:
        """Poll ``ready`` until it is true or the deadline has passed."""
        while True:
            self.check()
            if ready():
                return
            if time.monotonic() >= self.deadline:
                raise WorkflowError(reason='timed out after %d s waiting '
                                           'for %s' % (self.provision_timeout,
                                                       what))
            time.sleep(self.poll_interval)

    def node(self, node_id: int | None) -> dict | None:
        """The row of node ``node_id``, or None when unset or gone."""
        if node_id is None:
            return None
        try:
            return self.db.get('nodes', node_id)
        except exception.NotFound:
            return None

    # -- taking hold of the task's resource ---------------------------------

    def _older_live_task(self) -> dict | None:
        """An older task still running on the same resource, if any.

        Tasks on one resource run oldest first; a task whose lease ran out
        no longer counts (recovery re-runs it later, after this one).
        """
        now = utcnow()
        mine = (self.task['created_at'], self.task['id'])
        for other in self.db.list('tasks', filters={
                'resource_id': self.resource_id, 'state': states.RUNNING}):
            if other['id'] == self.task['id']:
                continue
            if (other['created_at'], other['id']) >= mine:
                continue
            expires = other.get('lease_expires_at')
            if other.get('owner') and expires is not None and expires > now:
                return other
        return None

    def wait_for_older_tasks(self, kind: str) -> None:
        """Wait (within the deadline) until no older task works on the
        resource, so tasks on one resource run in the order recorded."""
        self.wait_until(lambda: self._older_live_task() is None,
                        'the older tasks on %s %s to finish'
                        % (kind, self.resource_id))

    def acquire(self, kind: str, event: str | None, busy_state: str,
                values: dict | None = None) -> dict:
        """Take hold of the resource: apply ``event`` or resume ``busy_state``.

        ``event`` moves the resource into ``busy_state`` (resize, reconcile,
        delete); a resource found already in ``busy_state`` is resumed: the
        API moved it there before casting, or an earlier run of this task
        died half-way.  ``values`` (e.g. a new target size) are written
        with the change.
        """
        self.wait_for_older_tasks(kind)
        while True:
            self.check()
            row = self.db.get(kind, self.resource_id)
            if event is not None and M.allows(row['state'], event):
                try:
                    return self.db.transition(kind, row['id'], M, event,
                                              values=values)
                except exception.InvalidState:
                    continue  # it moved meanwhile: look again
            if row['state'] == busy_state:
                if values:
                    row = self.db.update(kind, row['id'], values)
                return row
            raise WorkflowError(reason='%s %s is %s; cannot %s it'
                                       % (kind, row['id'], row['state'],
                                          event or 'create'))

    @contextlib.contextmanager
    def holding(self, kind: str, event: str | None, busy_state: str,
                values: dict | None = None) -> Iterator[dict]:
        """acquire(), and on failure leave the resource ERROR with a reason."""
        row = self.acquire(kind, event, busy_state, values)
        try:
            yield row
        except TaskLost:
            raise
        except Exception as exc:
            self.fail_resource(kind, reason_of(exc))
            raise

    def fail_resource(self, kind: str, reason: str) -> None:
        """Record ``reason`` on the resource (ERROR when the machine allows).
        """
        try:
            row = self.db.get(kind, self.resource_id)
            if M.allows(row['state'], 'fail'):
                self.db.transition(kind, row['id'], M, 'fail',
                                   values={'status_reason': reason})
            else:
                self.db.update(kind, row['id'], {'status_reason': reason})
        except exception.CryptoCloudException as exc:
            LOG.warning('Could not record the failure of %s %s: %s', kind,
                        self.resource_id, reason_of(exc))

    def finish_resource(self, kind: str, values: dict | None = None) -> dict:
        """The resource's work is done: it becomes ACTIVE."""
        self.check()
        values = dict(values or {})
        values.setdefault('status_reason', None)
        return self.db.transition(kind, self.resource_id, M, 'done',
                                  values=values)
