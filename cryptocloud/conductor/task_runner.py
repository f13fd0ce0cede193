"""Run tasks: claim with a lease, work in a bounded pool, always finish.

``submit`` never blocks the caller (the RPC thread): when every worker is
busy the task stays PENDING and a later periodic pass picks it up.  A
claimed task's lease is renewed by one thread for all running tasks; if a
renewal fails another conductor has taken the task over, and this one
stops at its next step without writing the result.
"""

import threading

import futurist
from oslo_log import log as logging

from cryptocloud.common import context as cc_context
from cryptocloud.common import exception
from cryptocloud.conductor import workflows
from cryptocloud.conductor.workflows import base

LOG = logging.getLogger(__name__)


class TaskRunner:
    """Claims tasks for this conductor and runs their workflows."""

    def __init__(self, db, compute, scheduler, *, owner: str, workers: int,
                 lease_seconds: int, provision_timeout: float,
                 poll_interval: float = 0.5) -> None:
        self._db = db
        self._compute = compute
        self._scheduler = scheduler
        self.owner = owner
        self._lease_seconds = lease_seconds
        self._provision_timeout = provision_timeout
        self._poll_interval = poll_interval
        self._slots = threading.BoundedSemaphore(workers)
        self._executor = futurist.ThreadPoolExecutor(max_workers=workers)
        self._leases: dict[str, base.Lease] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._renewer = threading.Thread(target=self._renew_loop,
                                         name='task-lease-renewer',
                                         daemon=True)

    def start(self) -> None:
        """Start renewing leases."""
        self._renewer.start()

    def stop(self, wait: bool = True) -> None:
        """Take no more tasks; with ``wait``, let running ones finish."""
        self._stopping.set()
        self._executor.shutdown(wait=wait)
        if self._renewer.is_alive():
            self._renewer.join(timeout=5)

    @property
    def running(self) -> list[str]:
        """Ids of the tasks this conductor is running."""
        with self._lock:
            return list(self._leases)

    def submit(self, task_id: str) -> bool:
        """Claim and start ``task_id`` if a worker is free; never blocks.

        Returns whether this conductor took the task.  False when all
        workers are busy (it stays PENDING), another conductor holds it,
        or it is finished.
        """
        if self._stopping.is_set():
            return False
        with self._lock:
            if task_id in self._leases:
                return False  # already running here
        # Taking a slot first means a claimed task always has a thread.
        if not self._slots.acquire(blocking=False):
            LOG.info('All workers busy; task %s waits for the next pass.',
                     task_id)
            return False
        try:
            task = self._db.claim_task(task_id, self.owner,
                                       self._lease_seconds)
        except Exception as exc:  # noqa: BLE001 - caller must not crash
            self._slots.release()
            LOG.warning('Could not claim task %s: %s', task_id,
                        base.reason_of(exc))
            return False
        if task is None:
            self._slots.release()
            return False
        lease = base.Lease(task_id)
        with self._lock:
            self._leases[task_id] = lease
        try:
            self._executor.submit(self._run, task, lease)
        except futurist.RejectedSubmission:
            # Shutting down: the lease runs out and recovery re-runs it.
            self._done(task_id)
            return False
        return True

    def _done(self, task_id: str) -> None:
        with self._lock:
            self._leases.pop(task_id, None)
        self._slots.release()

    def _context(self, task: dict) -> cc_context.RequestContext:
        ctxt = cc_context.get_admin_context()
        if task.get('request_id'):
            ctxt.request_id = task['request_id']
        return ctxt

    def _run(self, task: dict, lease: base.Lease) -> None:
        task_id = task['id']
        succeeded, error = False, None
        try:
            wf = base.WorkflowContext(
                db=self._db, compute=self._compute,
                scheduler=self._scheduler, task=task, lease=lease,
                provision_timeout=self._provision_timeout,
                poll_interval=self._poll_interval,
                ctxt=self._context(task))
            LOG.info('Running task %s (%s %s).', task_id, task['action'],
                     task.get('resource_id'))
            workflows.get(task['action'])(wf)
            succeeded = True
        except base.TaskLost:
            LOG.warning('Task %s was taken over by another conductor; '
                        'leaving it to that one.', task_id)
            self._done(task_id)
            return
        except exception.CryptoCloudException as exc:
            error = base.reason_of(exc)
        except Exception as exc:  # noqa: BLE001 - becomes the task's error
            LOG.exception('Task %s failed unexpectedly.', task_id)
            error = base.reason_of(exc)
        try:
            self._db.finish_task(task_id, self.owner, succeeded=succeeded,
                                 error=error)
            if succeeded:
                LOG.info('Task %s succeeded.', task_id)
            else:
                LOG.warning('Task %s failed: %s', task_id, error)
        except (exception.TaskNotOwned, exception.InvalidState) as exc:
            LOG.warning('Task %s: result not recorded: %s', task_id,
                        base.reason_of(exc))
        except Exception as exc:  # noqa: BLE001 - lease expiry recovers it
            LOG.error('Task %s: could not record the result: %s', task_id,
                      base.reason_of(exc))
        finally:
            self._done(task_id)

    def renew_leases(self) -> None:
        """Extend the lease of every running task; mark lost ones."""
        with self._lock:
            leases = list(self._leases.values())
        for lease in leases:
            try:
                if not self._db.renew_task_lease(lease.task_id, self.owner,
                                                 self._lease_seconds):
                    lease.lose()
            except Exception as exc:  # noqa: BLE001 - retried next time
                LOG.warning('Could not renew the lease of task %s: %s',
                            lease.task_id, base.reason_of(exc))

    def _renew_loop(self) -> None:
        # A third of the lease: two renewals may fail before it runs out.
        interval = max(1.0, self._lease_seconds / 3.0)
        while not self._stopping.wait(interval):
            self.renew_leases()
