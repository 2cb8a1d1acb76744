"""Database wiring: the SQLAlchemy extension plus what SQLite needs to behave like PostgreSQL."""

from __future__ import annotations

import sqlite3
from typing import Any, cast

from flask import Flask
from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Engine, Result
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


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE run by ``db.session.execute`` matched. Its result is a
    CursorResult, which SQLAlchemy 2.1's hints do not say (they type it as a plain Result)."""
    return cast(CursorResult[Any], result).rowcount


OUTAGE_TEXTS = ("could not connect", "not accepting connections", "connection refused")
# PostgreSQL error classes that say nothing about the statement: connection lost (08), a
# transaction to retry (40), out of resources (53), a shutdown or restart (57), an I/O error
# (58), and a read-only server (25006: a replica during a failover).
OUTAGE_SQLSTATES = ("08", "40", "53", "57", "58", "25006")


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` says the database is unreachable or busy (worth retrying as it is),
    as opposed to refusing this statement (integrity, data, a bug: retrying changes nothing)."""
    if isinstance(error, OperationalError | InterfaceError | DisconnectionError):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    if sqlstate.startswith(OUTAGE_SQLSTATES):
        return True
    text = str(error).lower()
    return any(part in text for part in OUTAGE_TEXTS)


def init_app(app: Flask) -> None:
    db.init_app(app)
