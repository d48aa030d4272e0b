"""offer legs: the operator's own outbound leg of an offer

Revision ID: 0010
Revises: 0004
Create Date: 2026-12-04 10:00:00

The caller now waits in their queue, hearing the announcements, while the operators' phones ring:
each operator is rung by an outbound call of their own (`leg_sid`), and the worker hangs up the legs
whose offer ended while they still rang (`leg_done`, the partial index of such stray legs).
`bridged_at`: when the leg's `<Dial><Queue>` took the caller out of their queue.
`calls.twilio_queue_sid`: each caller's own Twilio queue, which the worker deletes once the call ends.
Written by hand; the same on SQLite and PostgreSQL.
"""

import sqlalchemy as sa
import queue_app.db
from alembic import op

revision = "0010"
down_revision = "0004"
branch_labels = None
depends_on = None

QUEUE_KEPT = sa.text("twilio_queue_sid IS NOT NULL")
STRAY_LEG = sa.text("leg_sid IS NOT NULL AND NOT leg_done AND state NOT IN ('ringing', 'accepted')")


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("twilio_queue_sid", sa.String(length=64), nullable=True))
        batch_op.create_index(
            "ix_calls_twilio_queue",
            ["id"],
            unique=False,
            postgresql_where=QUEUE_KEPT,
            sqlite_where=QUEUE_KEPT,
        )
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("leg_sid", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("leg_done", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("bridged_at", queue_app.db.UTCDateTime(), nullable=True))
        batch_op.create_index(
            "ix_offers_stray_legs", ["id"], unique=False, postgresql_where=STRAY_LEG, sqlite_where=STRAY_LEG
        )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_twilio_queue")
        batch_op.drop_column("twilio_queue_sid")
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.drop_index("ix_offers_stray_legs")
        batch_op.drop_column("bridged_at")
        batch_op.drop_column("leg_done")
        batch_op.drop_column("leg_sid")
