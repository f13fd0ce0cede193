"""Alembic environment of the control-plane database."""

from cryptocloud.db import migration_env
from cryptocloud.db import models

migration_env.run(models.metadata)
