"""Published images in the control database.

Every push of the vHSM or crypto-service image is recorded with its
registry digest.  A vHSM group or service pins the newest image of its
kind when it is created (``image_ref``), so that every workload it ever
starts, replacements included, runs exactly that image until an operator
says otherwise.
"""

import uuid

from cryptocloud.common import exception

VHSM = 'vhsm'
CRYPTOSERVICE = 'cryptoservice'
KINDS = (VHSM, CRYPTOSERVICE)

_FIELDS = ('kind', 'repository', 'tag', 'digest', 'reference', 'version',
           'revision', 'size')


def record(conn, result: dict) -> dict:
    """Record one pushed image (a build result with a digest); its row.

    Pushing the same image again (same kind and digest) returns the row
    already recorded.
    """
    if not result.get('digest') or not result.get('reference'):
        raise exception.InvalidInput(
            reason='image %s was not pushed: nothing to record'
                   % result.get('kind'))
    values = {field: result.get(field) for field in _FIELDS}
    values['id'] = str(uuid.uuid4())
    try:
        return conn.create('images', values)
    except exception.Conflict:
        found = conn.list('images', filters={'kind': values['kind'],
                                             'digest': values['digest']})
        if found:
            return found[0]
        raise


def latest(conn, kind: str) -> dict | None:
    """The newest recorded image of ``kind``, None when there is none."""
    rows = conn.list('images', filters={'kind': kind}, limit=1,
                     sort_dir='desc')
    return rows[0] if rows else None


def reference_to_pin(conn, kind: str) -> str | None:
    """The digest-pinned reference a new group or service runs from."""
    row = latest(conn, kind)
    return row['reference'] if row else None


def view(row: dict) -> dict:
    """An image as the admin API shows it."""
    return {'id': row['id'], 'kind': row['kind'],
            'repository': row['repository'], 'tag': row['tag'],
            'digest': row['digest'], 'reference': row['reference'],
            'version': row.get('version'), 'revision': row.get('revision'),
            'size': row.get('size'), 'created_at': row['created_at']}
