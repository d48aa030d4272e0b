"""prompts recorded by phone

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 14:00:00

A recording made by phone for a prompt remembers the prompt it replaces and the admin whose phone
the worker calls (services/prompts.py). Written by hand; the same on SQLite and PostgreSQL.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prompt_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_recordings_prompt_id_prompts"),
            "prompts",
            ["prompt_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_recordings_user_id_users"), "users", ["user_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_recordings_user_id_users"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_recordings_prompt_id_prompts"), type_="foreignkey")
        batch_op.drop_column("user_id")
        batch_op.drop_column("prompt_id")
