"""Project scoping shared by the v1 controllers.

Groups, services and tasks carry a ``project_id``; vHSMs, instances and
associations belong to a project through their group or service.  A
caller who is not an admin sees only their project's rows: any other
row is "not found", never "forbidden".
"""

from cryptocloud.api import policy
from cryptocloud.api.controllers import base
from cryptocloud.common import exception


def load_owned(req: base.Request, kind: str, ident, singular: str,
               rule: str | None = None) -> dict:
    """The row, if the caller may see it under ``rule``; else 404."""
    row = req.conn.get(kind, ident)
    policy.authorize_owner(rule or req.route.policy, req.ctx, row, singular,
                           ident)
    return row


def load_via_parent(req: base.Request, kind: str, ident, singular: str,
                    parent_kind: str, parent_key: str) -> dict:
    """A row whose project is its parent's (vHSM -> group, ...)."""
    row = req.conn.get(kind, ident)
    parent = req.conn.get(parent_kind, row[parent_key])
    policy.authorize_owner(req.route.policy, req.ctx, parent, singular,
                           ident)
    return row


def project_ids(req: base.Request, kind: str) -> list:
    """Ids of the caller's project's rows of ``kind`` (groups, services)."""
    return [row['id'] for row in req.conn.list(
        kind, filters={'project_id': req.ctx.project_id})]


def owned_parent(req: base.Request, kind: str, ident: str,
                 singular: str) -> None:
    """404 unless the caller may see the parent named in a list filter."""
    try:
        load_owned(req, kind, ident, singular)
    except exception.NotFound:
        raise exception.ResourceNotFound(kind=singular, id=ident) from None
