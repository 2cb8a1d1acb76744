"""Unbound extension objects, bound to the app in ``create_app``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import redis
from flask import Flask, current_app
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData, Table
from sqlalchemy.orm import DeclarativeBase

# Every constraint gets a predictable name so migrations can drop or alter it.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    if TYPE_CHECKING:
        # Every model here is declared on a Table (DeclarativeBase says only FromClause).
        __table__: ClassVar[Table]


db = SQLAlchemy(model_class=Base)

# The base class of every model. At run time it is ``db.Model`` (Base plus Flask-SQLAlchemy's
# mixins); a type checker cannot subclass an attribute of an instance, so it sees Base itself.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model
migrate = Migrate()
babel = Babel()
login_manager = LoginManager()
csrf = CSRFProtect()
# Storage is the app's Redis (RATELIMIT_STORAGE_URI, set from REDIS_URL in app.auth).
limiter = Limiter(key_func=get_remote_address, key_prefix="ewas-limits")


def init_redis(app: Flask) -> None:
    """The app's Redis client for request handling and the health check: one connection pool per
    app, made here, with short timeouts so a Redis that does not answer shows as down instead of
    holding a page. Long-lived loops (recorder, beat, watcher, heartbeats) keep their own
    connections, with the timeouts their blocking reads need."""
    app.extensions["redis"] = redis.Redis.from_url(
        app.config["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2
    )


def own_redis(url: str, timeout: float = 5.0) -> redis.Redis:
    """A Redis client with a pool of its own, for a long-lived loop or a task (the recorder, the
    watcher, worker heartbeats, beat's checks): timeouts make a server that stopped answering
    (paused, partitioned) an outage the loop rides out instead of a call that hangs forever."""
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def redis_client() -> redis.Redis:
    """The current app's Redis client (see ``init_redis``)."""
    return current_app.extensions["redis"]
