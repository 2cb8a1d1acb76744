"""drop daily task statistics: never read (days are summed from the hourly roll-ups)

Revision ID: ab676c5b9bfe
Revises: e1a9c3b5d7f2
Create Date: 2026-12-04 01:30:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "ab676c5b9bfe"
down_revision = "e1a9c3b5d7f2"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("daily_task_statistics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_daily_task_statistics_day"))
    op.drop_table("daily_task_statistics")


def downgrade():
    # The table as 4eecd0c677c9 created it, empty: the 01:00 task of that code fills it again.
    op.create_table(
        "daily_task_statistics",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("task_type", sa.String(length=64), nullable=False),
        sa.Column("task_name", sa.String(length=255), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("success", sa.Integer(), nullable=False),
        sa.Column("failure", sa.Integer(), nullable=False),
        sa.Column("retry", sa.Integer(), nullable=False),
        sa.Column("revoked", sa.Integer(), nullable=False),
        sa.Column("avg_duration_seconds", sa.Float(), nullable=True),
        sa.Column("p95_duration_seconds", sa.Float(), nullable=True),
        sa.Column("avg_cpu_seconds", sa.Float(), nullable=True),
        sa.Column("total_cpu_seconds", sa.Float(), nullable=True),
        sa.Column("avg_peak_memory_bytes", sa.Float(), nullable=True),
        sa.Column("max_peak_memory_bytes", sa.BigInteger(), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daily_task_statistics")),
        sa.UniqueConstraint(
            "day",
            "task_type",
            "task_name",
            name=op.f("uq_daily_task_statistics_day_task_type_task_name"),
        ),
    )
    with op.batch_alter_table("daily_task_statistics", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_daily_task_statistics_day"), ["day"], unique=False)
