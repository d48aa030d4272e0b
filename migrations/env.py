"""Alembic environment: the engine comes from the app (queue_app.migrations)."""

from alembic import context

from queue_app import models  # noqa: F401  (registers every table on Base.metadata)
from queue_app.db import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
