"""cryptocloud: cryptographic computing as a cloud service."""

from oslo_service import backend as _service_backend

# oslo.service picks its eventlet backend unless told otherwise before
# oslo.messaging first imports it; cryptocloud runs on native threads.
try:
    _service_backend.init_backend(_service_backend.BackendType.THREADING)
except _service_backend.exceptions.BackendAlreadySelected:
    pass
