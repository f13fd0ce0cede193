"""The root of the admin API: the versions document at ``/``."""

from cryptocloud.api.controllers import base
from cryptocloud.api.controllers.v1 import root as v1_root


class RootController(base.Controller):
    """``/``: the versions this API serves."""

    children = {'v1': v1_root.V1Controller()}

    @base.route('versions')
    def versions(self, req: base.Request) -> dict:
        """List the API versions."""
        version = base.version_document(base.base_url())
        return {'versions': [version], 'default_version': version}
