"""build_images: build the vHSM and crypto-service images on the master
node, push them to the registry and record their digests (claim 6).

The conductor runs on the master node, which holds the source tree and a
Docker Engine ([images] docker_url).  Groups and services created after
this task pin the images it recorded; running ones keep theirs.
"""

from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.conductor.workflows import base
from cryptocloud.conf import CONF
from cryptocloud.images import catalog

LOG = logging.getLogger(__name__)


def run(wf: base.WorkflowContext) -> None:
    """Build, push and record; the task's params list what was recorded."""
    # Imported here: only the master node needs the Docker SDK at work.
    from cryptocloud.images import build

    kinds = tuple(wf.params.get('kinds') or catalog.KINDS)
    push = bool(wf.params.get('push', True))
    wf.check()
    try:
        results = build.ImageBuilder(CONF).build_and_push(kinds=kinds,
                                                          push=push)
    except exception.CryptoCloudException as exc:
        raise base.WorkflowError(reason='image build failed: %s'
                                 % base.reason_of(exc)) from None
    wf.check()
    summary = []
    for result in results:
        entry = {'kind': result['kind'], 'tag': result.get('tag'),
                 'build_seconds': result.get('build_seconds'),
                 'push_seconds': result.get('push_seconds')}
        if result.get('digest'):
            row = catalog.record(wf.db, result)
            entry.update(image_id=row['id'], reference=row['reference'])
            LOG.info('Published %s image %s.', row['kind'],
                     row['reference'])
        summary.append(entry)
    wf.db.update('tasks', wf.task['id'],
                 {'params': dict(wf.params, images=summary)})
