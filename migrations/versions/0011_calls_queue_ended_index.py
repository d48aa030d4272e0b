"""the handling history: an index of a queue's calls by when they ended

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 02:10:00

The expected wait is estimated from a queue's last calls to have ended (`_recent_calls` in
services/calls.py, reloaded by each web process every 30 s); with no index on ended_at the database
read all of the queue's calls ever and sorted them to find the newest. With (queue_id, ended_at) it
reads the newest few hundred in order, backwards, and stops. Written by hand; the same on SQLite and PostgreSQL.
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index("ix_calls_queue_ended", ["queue_id", "ended_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_queue_ended")
