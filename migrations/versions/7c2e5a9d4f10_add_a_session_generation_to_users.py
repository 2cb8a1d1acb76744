"""add a session generation to users

Revision ID: 7c2e5a9d4f10
Revises: 1b91335c5bb8
Create Date: 2026-12-03 11:34:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "7c2e5a9d4f10"
down_revision = "7c1e5a9d2b60"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_generation", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("session_generation")
