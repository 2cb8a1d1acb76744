"""A fix for kombu's Redis transport (5.7) when Redis restarts under a running worker.

When the worker loses its broker connection, Celery closes it. Closing a Redis channel drops the
channel's connection pool first and then restores the channel's delivered, unacknowledged
messages (kombu's ``restore_unacked_once``) through that pool, which it makes again from the
connection's client; once kombu has detached the transport from its client, that raises
``AttributeError: 'NoneType' object has no attribute 'hostname'``. Celery does not take an
``AttributeError`` for a connection error: the consumer dies ("Unrecoverable error") and the
worker stops taking messages while its process stays up. The same happens to a task that ends
after the connection was replaced: acknowledging its message on the closed channel raises it.

Measured in ``tests/test_redis_outage_processes.py``: about one restart in ten left the worker
consuming nothing. With this fix a channel whose transport is detached makes its connection pool
again the way it first made it (same server, database and options), so restoring and
acknowledging do what kombu meant them to do. When Redis is still down they raise a connection
error, which Celery handles: the messages then stay in the unacknowledged hash and are handed
out again after the visibility timeout. Without a pool, kombu's restore would even drop a
message: it logs "Could not restore message" and still removes it from the unacknowledged hash.
"""

from __future__ import annotations

from typing import Any

import redis


def install() -> None:
    """Patch kombu's Redis channel once per process (idempotent): each channel remembers how it
    made its pool, and once its transport is detached makes the pool again from that."""
    from kombu.transport import redis as transport

    channel_class: Any = transport.Channel
    if getattr(channel_class, "_ewas_detached_fix", False):
        return
    get_pool = channel_class._get_pool

    def patched_get_pool(self: Any, asynchronous: bool = False) -> Any:
        made = getattr(self, "_ewas_pool_made", None)
        if getattr(self.connection, "client", None) is None and made is not None:
            connection_class, kwargs = made
            return redis.ConnectionPool(connection_class=connection_class, **kwargs)
        pool = get_pool(self, asynchronous)
        if not asynchronous:
            self._ewas_pool_made = (pool.connection_class, dict(pool.connection_kwargs))
        return pool

    channel_class._get_pool = patched_get_pool
    channel_class._ewas_detached_fix = True
