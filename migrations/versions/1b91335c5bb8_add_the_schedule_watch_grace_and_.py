"""add the schedule watch, grace and maximum duration

Revision ID: 1b91335c5bb8
Revises: be83c87aa217
Create Date: 2026-12-03 10:13:41.602140

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "1b91335c5bb8"
down_revision = "be83c87aa217"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "schedule_watch",
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("occurrence", sa.DateTime(timezone=True), nullable=True),
        sa.Column("alerted", sa.String(length=64), nullable=True),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["scheduled_tasks.id"],
            name=op.f("fk_schedule_watch_schedule_id_scheduled_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("schedule_id", name=op.f("pk_schedule_watch")),
    )
    with op.batch_alter_table("scheduled_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grace_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_duration_seconds", sa.Integer(), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_scheduled_tasks_grace_positive"),
            "grace_seconds IS NULL OR grace_seconds > 0",
        )
        batch_op.create_check_constraint(
            op.f("ck_scheduled_tasks_max_duration_positive"),
            "max_duration_seconds IS NULL OR max_duration_seconds > 0",
        )


def downgrade():
    with op.batch_alter_table("scheduled_tasks", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_scheduled_tasks_max_duration_positive"), type_="check")
        batch_op.drop_constraint(op.f("ck_scheduled_tasks_grace_positive"), type_="check")
        batch_op.drop_column("max_duration_seconds")
        batch_op.drop_column("grace_seconds")
    op.drop_table("schedule_watch")
