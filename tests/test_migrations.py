"""Migrations build the whole schema on an empty database and remove it again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, make_url, text

from app import create_app
from app.extensions import db


@pytest.fixture
def empty_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same kind as the session's (SQLite or PostgreSQL)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    server = make_url(database_url)
    name = f"ewas_migr_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield server.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_upgrade_then_downgrade_base(empty_database_url: str, redis_url: str) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "REDIS_URL": redis_url})
    with app.app_context():
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert set(db.metadata.tables) <= tables
        indexes = {ix["name"] for ix in inspect(db.engine).get_indexes("task_executions")}
        assert {
            "ix_task_executions_type_status_started",
            "ix_task_executions_source_variable",
            "ix_task_executions_created_at",
        } <= indexes
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        assert set(db.metadata.tables) <= set(inspect(db.engine).get_table_names())
        db.engine.dispose()
