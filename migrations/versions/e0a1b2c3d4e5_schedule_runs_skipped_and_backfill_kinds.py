"""schedule runs: skipped (overlap policy) and backfill kinds

Revision ID: e0a1b2c3d4e5
Revises: d8e4f1a2b3c5
Create Date: 2026-12-03 18:40:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "e0a1b2c3d4e5"
down_revision = "d8e4f1a2b3c5"
branch_labels = None
depends_on = None

OLD = ("scheduled", "manual", "catchup", "missed")
NEW = (*OLD, "skipped", "backfill")


def _kind(values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(
        *values, name="schedule_run_kind", native_enum=False, create_constraint=True, length=16
    )


def upgrade():
    with op.batch_alter_table("schedule_runs", schema=None) as batch_op:
        batch_op.alter_column("kind", existing_type=_kind(OLD), type_=_kind(NEW), nullable=False)


def downgrade():
    op.execute("DELETE FROM schedule_runs WHERE kind IN ('skipped', 'backfill')")
    with op.batch_alter_table("schedule_runs", schema=None) as batch_op:
        batch_op.alter_column("kind", existing_type=_kind(NEW), type_=_kind(OLD), nullable=False)
