"""indexes for the dispatcher

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:00:00

The dispatcher reads the head of each queue (priority first, then the longest waiting) with a
LIMIT, looks for available operators per organisation, and counts each operator's calls answered
today for fair distribution. Written by hand; the same on SQLite and PostgreSQL.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_queue_waiting")
        batch_op.create_index(
            "ix_calls_queue_order",
            ["queue_id", "state", sa.text("priority DESC"), "entered_queue_at", "id"],
            unique=False,
        )
        batch_op.create_index("ix_calls_answered_by", ["answered_by_id", "answered_at"], unique=False)
    with op.batch_alter_table("operator_statuses", schema=None) as batch_op:
        batch_op.create_index("ix_operator_statuses_state", ["state", "organisation_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("operator_statuses", schema=None) as batch_op:
        batch_op.drop_index("ix_operator_statuses_state")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_answered_by")
        batch_op.drop_index("ix_calls_queue_order")
        batch_op.create_index(
            "ix_calls_queue_waiting", ["queue_id", "state", "priority", "entered_queue_at"], unique=False
        )
