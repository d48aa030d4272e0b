"""invitations by e-mail, prompts recorded by dialling in

Revision ID: 0006
Revises: 0009
Create Date: 2026-11-26 10:00:00

- `sent_messages.invited_user_id`: an invitation e-mail is a `SentMessage` like any other (the worker
  sends and retries it), tied to the user it invites so the user page shows its delivery status and
  the operators' message lists leave it out (it carries a set-password link).
- `phone_numbers.records_prompts`: the organisation's number an admin dials to record a prompt.
- `recordings.pin_hash`, `pin_expires_at`, `pin_attempts`: the one-time PIN of a dial-in session.

Written by hand; the same on SQLite and PostgreSQL.
"""

import sqlalchemy as sa
from alembic import op

import queue_app.db

revision = "0006"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sent_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invited_user_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_sent_messages_invited_user_id"), ["invited_user_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_sent_messages_invited_user_id_users"),
            "users",
            ["invited_user_id"],
            ["id"],
            ondelete="CASCADE",
        )
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("records_prompts", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pin_hash", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("pin_expires_at", queue_app.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("pin_attempts", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_column("pin_attempts")
        batch_op.drop_column("pin_expires_at")
        batch_op.drop_column("pin_hash")
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.drop_column("records_prompts")
    with op.batch_alter_table("sent_messages", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_sent_messages_invited_user_id_users"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_sent_messages_invited_user_id"))
        batch_op.drop_column("invited_user_id")
