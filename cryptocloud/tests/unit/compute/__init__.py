# The compute package selects oslo.service's threading backend; do it
# before any test module imports oslo.messaging.
from cryptocloud.common import threading_backend  # noqa: F401
