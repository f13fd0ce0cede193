"""``/v1/images``: the published vHSM and crypto-service images (admin).

``POST /v1/images`` builds both images (or the kinds asked for) on the
master node and pushes them to the registry, as a task like any other
change: the conductor does the work and records each pushed image with
its registry digest.  Groups and services created afterwards pin the
newest image of their kind.
"""

import uuid

from cryptocloud.api import tasks
from cryptocloud.api.controllers import base
from cryptocloud.images import catalog

KIND = 'images'
SINGULAR = 'image'
BUILD_ACTION = 'build_images'


class ImageController(base.Controller):
    """``/v1/images/{image_id}``."""

    def __init__(self, image_id: str):
        self.image_id = image_id

    @base.route('images:get')
    def get(self, req: base.Request) -> dict:
        """Show a published image."""
        return catalog.view(req.conn.get(KIND, self.image_id))


class ImagesController(base.Controller):
    """``/v1/images``."""

    def child(self, segment: str):
        """The image called ``segment`` (a UUID)."""
        return ImageController(base.check_uuid(segment, SINGULAR))

    @base.route('images:list')
    def get_all(self, req: base.Request) -> dict:
        """List published images, newest first within each page."""
        filters = {}
        if 'kind' in req.query:
            filters['kind'] = req.query['kind']
        return base.page(req, KIND, KIND, filters, catalog.view)

    @base.route('images:build')
    def post(self, req: base.Request) -> dict:
        """Build (and by default push) the images as a task."""
        body = req.body
        kinds = body.get('kinds') or list(catalog.KINDS)
        params = {'kinds': kinds, 'push': body.get('push', True)}
        task = tasks.record(req.conn, req.ctx, BUILD_ACTION, 'image_build',
                            str(uuid.uuid4()), params)
        task = tasks.cast(req.conn, req.conductor, req.ctx, task)
        return {'task': tasks.view(task)}
