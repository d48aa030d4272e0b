"""the queue line: a partial index of the calls in queue order

Revision ID: 0009
Revises: 0003
Create Date: 2026-11-25 12:10:00

The waitUrl reads the first callers of a queue in order (priority first, then who came first) to
say a caller's exact position. Limited to the states in which a call holds a place in the queue, the
index stays the size of the queue, not of the call history, and is read in order with no sort.
Written by hand; the same on SQLite and PostgreSQL (both support partial indexes).
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0003"
branch_labels = None
depends_on = None

IN_QUEUE = sa.text("state IN ('waiting', 'offered', 'callback_pending')")


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index(
            "ix_calls_queue_line",
            ["queue_id", sa.text("priority DESC"), "entered_queue_at", "id"],
            unique=False,
            postgresql_where=IN_QUEUE,
            sqlite_where=IN_QUEUE,
        )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_queue_line")
