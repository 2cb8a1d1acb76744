"""schedules: overlap policy and pause after failures; the reason of a skipped run

Revision ID: e1a9c3b5d7f2
Revises: f3b8d2c6e4a1
Create Date: 2026-12-03 18:30:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "e1a9c3b5d7f2"
down_revision = "f3b8d2c6e4a1"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("scheduled_tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "overlap_policy",
                sa.Enum(
                    "allow",
                    "skip",
                    "queue_one",
                    name="overlap_policy",
                    native_enum=False,
                    create_constraint=True,
                    length=16,
                ),
                nullable=False,
                server_default="allow",
            )
        )
        batch_op.add_column(sa.Column("pause_after_failures", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("paused_after_failures", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_scheduled_tasks_pause_after_failures_range"),
            "pause_after_failures IS NULL OR pause_after_failures BETWEEN 1 AND 1000",
        )
    with op.batch_alter_table("scheduled_tasks", schema=None) as batch_op:
        batch_op.alter_column("overlap_policy", server_default=None)
    with op.batch_alter_table("schedule_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.String(length=255), nullable=True))


def downgrade():
    with op.batch_alter_table("schedule_runs", schema=None) as batch_op:
        batch_op.drop_column("reason")
    with op.batch_alter_table("scheduled_tasks", schema=None) as batch_op:
        batch_op.drop_constraint(
            op.f("ck_scheduled_tasks_pause_after_failures_range"), type_="check"
        )
        batch_op.drop_constraint(op.f("ck_scheduled_tasks_overlap_policy"), type_="check")
        batch_op.drop_column("paused_at")
        batch_op.drop_column("paused_after_failures")
        batch_op.drop_column("pause_after_failures")
        batch_op.drop_column("overlap_policy")
