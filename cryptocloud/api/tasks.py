"""Task-first writes: record the request, change the row, then cast.

Every mutating call follows the same three steps:

1. :func:`record` writes the task row (PENDING) before anything else, so
   a crash at any later point leaves a trace the conductors recover;
2. the handler creates or transitions the resource row;
3. :func:`cast` asks a conductor to run the task.  When the bus is down
   the task is failed with the reason and the caller gets 503: nothing is
   left PENDING without anyone knowing.

When step 2 fails, :func:`abandon` fails the task with the error the
caller receives.
"""

import uuid

from oslo_log import log as logging

from cryptocloud.common import context as cc_context
from cryptocloud.common import exception
from cryptocloud.common import states

LOG = logging.getLogger(__name__)


def view(row: dict) -> dict:
    """A task as the API shows it (no lease bookkeeping)."""
    return {name: row.get(name) for name in (
        'id', 'request_id', 'project_id', 'user_id', 'action',
        'resource_type', 'resource_id', 'params', 'state', 'error', 'owner',
        'created_at', 'updated_at', 'started_at', 'finished_at')}


def record(conn, ctx: cc_context.RequestContext, action: str,
           resource_type: str, resource_id: str, params: dict) -> dict:
    """Write the task row (PENDING); ``params`` must hold no secret."""
    return conn.create('tasks', {
        'id': str(uuid.uuid4()),
        'request_id': ctx.request_id,
        'project_id': ctx.project_id,
        'user_id': ctx.user_id,
        'action': action,
        'resource_type': resource_type,
        'resource_id': str(resource_id),
        'params': params,
        'state': states.PENDING,
    })


def abandon(conn, task: dict, exc: BaseException) -> None:
    """Fail ``task`` because the request could not go on."""
    reason = (exc.message if isinstance(exc, exception.CryptoCloudException)
              else 'the API could not record the change (%s)'
              % type(exc).__name__)
    try:
        conn.finish_task(task['id'], None, succeeded=False, error=reason)
    except Exception:
        # The conductors' recovery pass fails it later; say so in the log.
        LOG.exception('Could not mark task %s FAILED', task['id'])


def cast(conn, conductor, ctx: cc_context.RequestContext, task: dict,
         resource_kind: str | None = None) -> dict:
    """Ask a conductor to run ``task``; on failure fail it and raise 503.

    With ``resource_kind``, the task's resource is failed too when the
    machine allows (a group or service left CREATING or UPDATING by a
    request that never reached a conductor would stay so forever).
    """
    try:
        conductor.do_task(ctx, task['id'])
    except Exception as exc:
        reason = ('the conductor could not be reached (%s)'
                  % type(exc).__name__)
        LOG.error('Task %s (%s %s): %s; marking it FAILED.', task['id'],
                  task['action'], task['resource_id'], reason)
        current = conn.get('tasks', task['id'])
        if current['state'] != states.PENDING:
            # A conductor already picked it up (the cast went through
            # after all): it is in good hands.
            return current
        try:
            task = conn.finish_task(task['id'], None, succeeded=False,
                                    error=reason)
        except exception.InvalidState:
            return conn.get('tasks', task['id'])
        if resource_kind is not None:
            _fail_resource(conn, resource_kind, task['resource_id'], reason)
        raise exception.ServiceUnavailable(
            reason='%s; task %s is FAILED, retry the request'
                   % (reason, task['id'])) from None
    return task


def _fail_resource(conn, kind: str, resource_id: str, reason: str) -> None:
    try:
        conn.transition(kind, resource_id, states.RESOURCE_MACHINE, 'fail',
                        {'status_reason': reason})
    except exception.CryptoCloudException:
        # DELETING has no "fail": a repeated DELETE retries it.
        pass
