"""consult-then-transfer: the conference and the colleague's leg

Revision ID: 0004
Revises: 0006
Create Date: 2026-12-02 10:00:00

A consult moves the caller and the operator into a Twilio Conference and dials the colleague into
it (services/consult.py). The transfer remembers the conference (its SID arrives in the conference's
status callbacks) and the colleague's call leg (returned by the Participants create), so the worker
can hold, unhold and remove participants and hang up a colleague who still rings. Written by hand;
the same on SQLite and PostgreSQL.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("conference_sid", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("consult_call_sid", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_column("consult_call_sid")
        batch_op.drop_column("conference_sid")
