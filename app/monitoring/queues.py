"""Queue depths read straight from the Redis broker (no worker round trip)."""

from __future__ import annotations

import redis

# kombu's Redis transport keeps priority levels in lists named ``<queue>\x06\x16<priority>``.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)


def queue_depths(client: redis.Redis) -> dict[str, int]:
    """Messages waiting in each of the engine's queues."""
    from celeryconfig import TASK_QUEUES

    pipe = client.pipeline(transaction=False)
    for queue in TASK_QUEUES:
        for step in PRIORITY_STEPS:
            pipe.llen(queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}")
    lengths = pipe.execute()
    steps = len(PRIORITY_STEPS)
    return {queue: sum(lengths[i * steps : (i + 1) * steps]) for i, queue in enumerate(TASK_QUEUES)}
