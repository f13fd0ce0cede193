from cryptocloud.common import threading_backend  # noqa: F401  (first)
