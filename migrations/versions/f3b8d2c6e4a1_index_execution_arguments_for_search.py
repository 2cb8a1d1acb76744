"""index execution arguments for search (GIN on args and kwargs as jsonb, PostgreSQL only)

Revision ID: f3b8d2c6e4a1
Revises: e0a1b2c3d4e5
Create Date: 2026-12-03 18:45:00.000000

SQLite has no such index: its argument search walks the JSON with json_tree. On PostgreSQL the
indexes are built CONCURRENTLY, so a table of millions of executions keeps taking writes while
they are built.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "f3b8d2c6e4a1"
down_revision = "e0a1b2c3d4e5"
branch_labels = None
depends_on = None

COLUMNS = ("args", "kwargs")


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        for name in COLUMNS:
            op.create_index(
                f"ix_task_executions_{name}_jsonb",
                "task_executions",
                [sa.text(f"({name}::jsonb)")],
                postgresql_using="gin",
                postgresql_concurrently=True,
                if_not_exists=True,
            )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        for name in COLUMNS:
            op.drop_index(
                f"ix_task_executions_{name}_jsonb",
                table_name="task_executions",
                postgresql_concurrently=True,
                if_exists=True,
            )
