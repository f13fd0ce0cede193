"""``/v1/tasks``: one row per mutating request (read-only).

A task's ``params`` never hold secrets; a credential's token is in the
response that made it and nowhere else.
"""

from cryptocloud.api import tasks
from cryptocloud.api.controllers import base
from cryptocloud.api.controllers.v1 import scope

KIND = 'tasks'
SINGULAR = 'task'


view = tasks.view


class TaskController(base.Controller):
    """``/v1/tasks/{task_id}``."""

    def __init__(self, task_id: str):
        self.task_id = task_id

    @base.route('tasks:get')
    def get(self, req: base.Request) -> dict:
        """Show a task."""
        return view(scope.load_owned(req, KIND, self.task_id, SINGULAR))


class TasksController(base.Controller):
    """``/v1/tasks``."""

    def child(self, segment: str):
        """The task called ``segment`` (a UUID)."""
        return TaskController(base.check_uuid(segment, SINGULAR))

    @base.route('tasks:list')
    def get_all(self, req: base.Request) -> dict:
        """List tasks, filtered by state, action and resource."""
        filters = {}
        for name in ('state', 'action', 'resource_id'):
            if name in req.query:
                filters[name] = req.query[name]
        if not req.is_admin:
            filters['project_id'] = req.ctx.project_id
        return base.page(req, KIND, KIND, filters, view)
