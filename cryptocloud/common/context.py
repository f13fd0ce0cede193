"""The request context: who asks, for which project, with which roles."""

from oslo_context import context as oslo_context


class RequestContext(oslo_context.RequestContext):
    """oslo.context's context; crosses RPC as ``to_dict()``."""

    @property
    def is_admin_role(self) -> bool:
        return 'admin' in (self.roles or [])


def get_admin_context() -> RequestContext:
    """The context of the control plane acting on its own behalf."""
    return RequestContext(user_id='cryptocloud', project_id='cryptocloud',
                          roles=['admin'], is_admin=True, overwrite=False)
