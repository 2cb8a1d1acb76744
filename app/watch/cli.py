"""``flask watch``: the schedule watch on its own (it also runs inside ``flask recorder``)."""

from __future__ import annotations

import signal
import threading

import click
from flask import current_app
from flask.cli import with_appcontext

from app.extensions import own_redis


@click.command("watch")
@click.option("--once", is_flag=True, help="Check every schedule once, print the states and exit.")
@with_appcontext
def watch_command(once: bool) -> None:
    """Watch every schedule: late, overrunning or failing ones raise alerts."""
    from app.watch.watcher import ScheduleWatcher

    app = current_app._get_current_object()  # type: ignore[attr-defined]  # current_app is typed Flask, not the proxy it is
    watcher = ScheduleWatcher(app, own_redis(app.config["REDIS_URL"]))
    if once:
        from app.extensions import db
        from app.models import ScheduleWatch

        watcher.tick()
        rows = db.session.query(ScheduleWatch).order_by(ScheduleWatch.schedule_id).all()
        if not rows:
            click.echo("No schedules to watch.")
        for row in rows:
            click.echo(f"{row.schedule_id}\t{row.state}\tsince {row.since.isoformat()}")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    click.echo(f"watch started: every schedule checked every {watcher.interval:g} s")
    watcher.run(stop)
    click.echo(f"watch stopped after {watcher.checks} checks")
