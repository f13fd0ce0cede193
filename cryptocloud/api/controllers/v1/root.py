"""``/v1``: the version document and the resource collections."""

from cryptocloud.api.controllers import base
from cryptocloud.api.controllers.v1 import associations
from cryptocloud.api.controllers.v1 import images
from cryptocloud.api.controllers.v1 import instances
from cryptocloud.api.controllers.v1 import nodes
from cryptocloud.api.controllers.v1 import services
from cryptocloud.api.controllers.v1 import tasks
from cryptocloud.api.controllers.v1 import vhsm_groups
from cryptocloud.api.controllers.v1 import vhsms


class V1Controller(base.Controller):
    """Version 1 of the admin API."""

    children = {
        'nodes': nodes.NodesController(),
        'vhsm_groups': vhsm_groups.GroupsController(),
        'services': services.ServicesController(),
        'instances': instances.InstancesController(),
        'vhsms': vhsms.VHSMsController(),
        'associations': associations.AssociationsController(),
        'tasks': tasks.TasksController(),
        'images': images.ImagesController(),
    }

    @base.route('version')
    def version(self, req: base.Request) -> dict:
        """Describe version 1."""
        return base.version_document(base.base_url())
