"""record who asked to cancel an execution

Revision ID: 7c1e5a9d2b60
Revises: be83c87aa217
Create Date: 2026-12-03 10:40:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "7c1e5a9d2b60"
down_revision = "8fedde73a9d7"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("task_executions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("cancel_requested_by", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("task_executions", schema=None) as batch_op:
        batch_op.drop_column("cancel_requested_by")
        batch_op.drop_column("cancel_requested_at")
