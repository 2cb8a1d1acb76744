"""``flask recorder``: the process that writes tracking events into the database."""

from __future__ import annotations

import signal
import threading

import click
from flask import current_app
from flask.cli import with_appcontext

from app.extensions import own_redis


@click.command("recorder")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--claim-idle",
    default=30.0,
    show_default=True,
    type=click.FloatRange(1.0),
    help="Seconds after which events left by a dead recorder are taken over.",
)
@with_appcontext
def recorder_command(batch_size: int, claim_idle: float) -> None:
    """Drain the tracking stream into the database (run one or more; they share the work)."""
    from app.tracking.recorder import Recorder

    app = current_app._get_current_object()  # type: ignore[attr-defined]  # current_app is typed Flask, not the proxy it is
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    recorder = Recorder(
        app=app,
        # Timeouts make a server that stopped answering an outage to ride out, not a hang.
        redis_client=own_redis(app.config["REDIS_URL"]),
        batch_size=batch_size,
        claim_idle=claim_idle,
        upkeep_interval=app.config["RECORDER_UPKEEP_SECONDS"],
    )
    if app.config["WATCH_IN_RECORDER"]:
        from app.watch.watcher import ScheduleWatcher

        ScheduleWatcher(app, own_redis(app.config["REDIS_URL"])).start(stop)
    click.echo(f"recorder {recorder.consumer} started")
    recorder.run(stop=stop)
    click.echo(f"recorder stopped after {recorder.stats['events']} events")
