"""finer duration histogram and an index for exact percentiles

The hourly roll-ups' duration buckets go from 0.1 s - 30 min (12 buckets) to 5 ms - 4 h (21):
the new bounds include the old ones, so each old bucket's count moves to the new bucket with
the same upper bound (the old open bucket, above 30 min, to the one up to 1 h). Counts stay
right; only durations counted before the upgrade keep their coarser resolution. Run
``flask rebuild-rollups --days N`` to recount them from the executions.

Revision ID: 8fedde73a9d7
Revises: be83c87aa217
Create Date: 2026-12-03 10:20:01.934794

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "8fedde73a9d7"
down_revision = "1b91335c5bb8"
branch_labels = None
depends_on = None

TABLE = "execution_stats_hourly"
NEW_COLUMNS = [f"le_{i:02d}" for i in range(12, 21)]
# new bucket -> the old buckets it takes its count from (upgrade); the reverse for downgrade
UPGRADE = {4: [0], 5: [1], 6: [2], 7: [3], 8: [4], 9: [5], 10: [6], 11: [7], 12: [8],
           14: [9], 16: [10], 17: [11]}  # fmt: skip
DOWNGRADE = {0: [0, 1, 2, 3, 4], 1: [5], 2: [6], 3: [7], 4: [8], 5: [9], 6: [10], 7: [11],
             8: [12], 9: [13, 14], 10: [15, 16], 11: [17, 18, 19, 20]}  # fmt: skip


def _remap(mapping: dict[int, list[int]], columns: int) -> None:
    """One UPDATE: its right-hand sides all read the row as it was before it."""
    assignments = ", ".join(
        f"le_{new:02d} = " + (" + ".join(f"le_{old:02d}" for old in mapping.get(new, [])) or "0")
        for new in range(columns)
    )
    op.execute(sa.text(f"UPDATE {TABLE} SET {assignments}"))


def upgrade():
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        for name in NEW_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    _remap(UPGRADE, 21)

    with op.batch_alter_table("task_executions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_task_executions_type_completed", ["task_type_id", "completed_at"], unique=False
        )


def downgrade():
    with op.batch_alter_table("task_executions", schema=None) as batch_op:
        batch_op.drop_index("ix_task_executions_type_completed")

    _remap(DOWNGRADE, 12)
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        for name in reversed(NEW_COLUMNS):
            batch_op.drop_column(name)
