"""app.kombu_fixes: a Redis channel whose transport kombu already detached from its client (what
a lost connection leaves while Celery closes it) still acknowledges and restores its messages,
instead of raising the AttributeError that stops a worker's consumer for good."""

from __future__ import annotations

import base64
import json

import pytest
import redis
from flask import Flask
from kombu import Connection

QUEUE = "ewas-test-kombu-fix"


@pytest.fixture
def delivered(app: Flask, redis_client: redis.Redis):
    """Two messages delivered and not acknowledged, on a channel whose transport lost its client."""
    connection = Connection(app.config["REDIS_URL"])
    queue = connection.SimpleQueue(QUEUE)
    queue.put({"n": 1})
    queue.put({"n": 2})
    first, second = queue.get(timeout=5), queue.get(timeout=5)
    assert redis_client.hlen("unacked") == 2
    connection.transport.client = None  # kombu's _do_close_transport, the channel still open
    yield queue.channel, first, second
    redis_client.delete(QUEUE, "unacked", "unacked_index")


def test_an_ack_on_a_detached_channel_reaches_redis(delivered, redis_client: redis.Redis) -> None:
    channel, first, _second = delivered
    channel._disconnect_pools()  # as closing it did: a task that ends after the reconnection
    first.ack()
    assert redis_client.hlen("unacked") == 1
    assert first.acknowledged and channel.qos.can_consume()


def test_closing_a_detached_channel_hands_its_messages_back(
    delivered, redis_client: redis.Redis
) -> None:
    channel, first, _second = delivered
    first.ack()
    channel.close()  # restores what it was given and did not acknowledge
    assert redis_client.hlen("unacked") == 0 and redis_client.zcard("unacked_index") == 0
    [restored] = redis_client.lrange(QUEUE, 0, -1)
    message = json.loads(restored)
    assert message["properties"]["body_encoding"] == "base64"
    assert json.loads(base64.b64decode(message["body"])) == {"n": 2}
