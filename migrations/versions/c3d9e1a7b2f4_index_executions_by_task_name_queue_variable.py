"""index executions by task name, queue and variable

Revision ID: c3d9e1a7b2f4
Revises: f49b735cbf6a
Create Date: 2026-11-28 10:25:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c3d9e1a7b2f4"
down_revision = "f49b735cbf6a"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("task_executions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_task_executions_task_name_created", ["task_name", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_task_executions_queue_created", ["queue", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_task_executions_variable",
            ["variable_id"],
            unique=False,
            postgresql_where=sa.text("variable_id IS NOT NULL"),
            sqlite_where=sa.text("variable_id IS NOT NULL"),
        )


def downgrade():
    with op.batch_alter_table("task_executions", schema=None) as batch_op:
        batch_op.drop_index("ix_task_executions_variable")
        batch_op.drop_index("ix_task_executions_queue_created")
        batch_op.drop_index("ix_task_executions_task_name_created")
