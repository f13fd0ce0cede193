"""Select oslo.service's threading backend, once, before oslo.messaging.

oslo.messaging imports oslo.service, whose default backend is eventlet.
The control-plane packages (api, conductor, compute) import this module
from their ``__init__`` so the choice is made before any of their modules
imports oslo.messaging.  The data-plane programs (vHSM, crypto service)
use neither library and do not import it.
"""

import warnings

# futurist imports eventlet only to find out whether it is installed (it
# is, as a dependency of oslo.service); eventlet then warns that it is
# deprecated.  Nothing here uses it, so that one warning is noise.
warnings.filterwarnings('ignore', message='\\s*Eventlet is deprecated')

from oslo_service import backend  # noqa: E402


def select() -> None:
    try:
        backend.init_backend(backend.BackendType.THREADING)
    except backend.exceptions.BackendAlreadySelected:
        pass


select()
