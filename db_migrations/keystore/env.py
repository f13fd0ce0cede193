"""Alembic environment of the vHSM keystore database."""

from cryptocloud.db import migration_env
from cryptocloud.vhsm.keystore import models

migration_env.run(models.metadata)
