"""Database wiring: the SQLAlchemy extension plus what SQLite needs to behave like PostgreSQL."""

from __future__ import annotations

import sqlite3
from typing import Any

from flask import Flask
from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

from app.extensions import db


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """SQLite ignores foreign keys unless asked, and locks readers out of writers without WAL."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def dialect_insert(table: Table) -> Any:
    """An INSERT of the session's dialect, which has ``on_conflict_do_*`` on both databases."""
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


OUTAGE_TEXTS = ("could not connect", "not accepting connections", "connection refused")


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` says the database is unreachable or busy (worth retrying as it is),
    as opposed to refusing this statement (integrity, data, a bug: retrying changes nothing)."""
    if isinstance(error, OperationalError | InterfaceError | DisconnectionError):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    text = str(error).lower()
    return isinstance(error, DBAPIError) and any(part in text for part in OUTAGE_TEXTS)


def init_app(app: Flask) -> None:
    db.init_app(app)
