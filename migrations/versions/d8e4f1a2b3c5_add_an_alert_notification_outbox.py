"""add an alert notification outbox

Revision ID: d8e4f1a2b3c5
Revises: 7c2e5a9d4f10
Create Date: 2026-12-03 15:10:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "d8e4f1a2b3c5"
down_revision = "7c2e5a9d4f10"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notify_claimed_at", sa.DateTime(timezone=True)))
        batch_op.add_column(
            sa.Column("notify_attempts", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("notify_due_at", sa.DateTime(timezone=True)))
        batch_op.create_index(
            "ix_alerts_unnotified",
            ["created_at"],
            unique=False,
            postgresql_where=sa.text("notified_at IS NULL"),
            sqlite_where=sa.text("notified_at IS NULL"),
        )


def downgrade():
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_unnotified")
        batch_op.drop_column("notify_due_at")
        batch_op.drop_column("notify_attempts")
        batch_op.drop_column("notify_claimed_at")
