"""Backfill: the occurrences of a past range (DST crontab, interval), the bounds and bad inputs
(a clear 4xx, nothing written), operators only, and sending each occurrence once with a real
worker after beat was stopped."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.errors import InvalidInput
from app.extensions import db
from app.models import (
    AuditEntry,
    PipelineRun,
    Role,
    RunKind,
    ScheduledTask,
    ScheduleRun,
    TaskExecution,
)
from app.models.types import utcnow
from app.scheduler.backfill import MAX_OCCURRENCES, claim, listing, occurrences_in, window
from app.scheduler.beat import RedisScheduler
from app.scheduler.projection import entry_data, timing_of
from app.scheduler.store import get_store
from app.services import backfill
from tests import factories
from tests.scheduler_support import scheduled_headers
from tests.support import HTMX, bearer, wait_for

BERLIN = ZoneInfo("Europe/Berlin")


def run_rows(schedule_id: int) -> list[ScheduleRun]:
    db.session.expire_all()
    query = select(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id)
    return list(db.session.scalars(query.order_by(ScheduleRun.occurrence, ScheduleRun.id)))


def backfill_rows(schedule_id: int) -> list[ScheduleRun]:
    return [r for r in run_rows(schedule_id) if r.kind == RunKind.BACKFILL]


def local(text: str, tz: ZoneInfo = BERLIN) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz).astimezone(UTC)


# -- the listing ---------------------------------------------------------------------------------


def test_a_crontab_in_a_dst_zone_fires_on_its_wall_clock_across_both_transitions(
    app: Flask,
) -> None:
    schedule = factories.schedule(
        name="berlin-0230", crontab="30 2 * * *", timezone="Europe/Berlin"
    )
    db.session.commit()
    timing = timing_of(entry_data(schedule))
    # Spring forward (2026-03-29: 02:00 -> 03:00): 02:30 does not exist, it fires at 03:00.
    spring = occurrences_in(timing, local("2026-03-28 00:00"), local("2026-03-31 00:00"))
    assert spring == [
        local("2026-03-28 02:30"),
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        local("2026-03-30 02:30"),
    ]
    # Fall back (2026-10-25: 03:00 -> 02:00): 02:30 happens twice, it fires at the first.
    fall = occurrences_in(timing, local("2026-10-24 00:00"), local("2026-10-27 00:00"))
    assert fall == [
        datetime(2026, 10, 24, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
    ]
    # The range typed on the schedule's clock: [00:00, 00:00) local, the end excluded.
    span = window("2026-10-24T00:00", "2026-10-27T00:00", "Europe/Berlin")
    assert [o.moment for o in listing(schedule, span)] == fall


def test_an_hourly_wildcard_crontab_fires_in_both_repeated_hours(app: Flask) -> None:
    schedule = factories.schedule(
        name="berlin-hourly", crontab="15 * * * *", timezone="Europe/Berlin"
    )
    db.session.commit()
    span = window("2026-10-25T01:00", "2026-10-25T04:00", "Europe/Berlin")
    moments = [o.moment for o in listing(schedule, span)]
    # 01:15 CEST, 02:15 CEST, 02:15 CET, 03:15 CET: four real hours.
    assert [m.strftime("%H:%M") for m in moments] == ["23:15", "00:15", "01:15", "02:15"]


def test_an_interval_is_phase_locked_to_its_anchor(app: Flask) -> None:
    anchor = datetime(2026, 11, 1, 0, 7, 0, tzinfo=UTC)
    schedule = factories.schedule(
        name="every-20", kind="interval", crontab=None, interval_every=20,
        interval_unit="minutes", start_at=anchor,
    )  # fmt: skip
    db.session.commit()
    span = window("2026-11-02T10:00:00+00:00", "2026-11-02T11:00:00+00:00", "UTC")
    moments = [o.moment for o in listing(schedule, span)]
    assert moments == [datetime(2026, 11, 2, 10, m, tzinfo=UTC) for m in (7, 27, 47)]
    # Before its start nothing fires.
    early = window("2026-10-31T00:00", "2026-11-01T00:07", "UTC")
    assert listing(schedule, early) == []


def test_the_listing_marks_occurrences_already_run(app: Flask) -> None:
    schedule = factories.schedule(name="hourly", crontab="0 * * * *")
    db.session.commit()
    ten = datetime(2026, 11, 2, 10, tzinfo=UTC)
    db.session.add_all(
        [
            ScheduleRun(schedule_id=schedule.id, occurrence=ten, kind=RunKind.SCHEDULED,
                        task_id="a", sent_at=ten),
            ScheduleRun(schedule_id=schedule.id, occurrence=ten + timedelta(hours=1),
                        kind=RunKind.MISSED),
            ScheduleRun(schedule_id=schedule.id, occurrence=ten + timedelta(hours=2),
                        kind=RunKind.SCHEDULED, task_id="c", error="ConnectionError: down"),
            ScheduleRun(schedule_id=schedule.id, occurrence=ten + timedelta(hours=3),
                        kind=RunKind.CATCHUP, task_id="d", sent_at=ten),
        ]
    )  # fmt: skip
    db.session.commit()
    found = listing(schedule, window("2026-11-02T10:00", "2026-11-02T15:00", "UTC"))
    assert [(o.moment.hour, o.run_kind) for o in found] == [
        (10, "scheduled"),
        (11, None),
        (12, None),
        (13, "catchup"),
        (14, None),
    ]  # fmt: skip  (missed and not-sent runs may be backfilled)


# -- bounds and bad inputs -----------------------------------------------------------------------

BAD_RANGES = [
    ("2026-11-02T12:00", "2026-11-02T10:00", "UTC", "end"),  # reversed
    ("2026-11-02T10:00", "2026-11-02T10:00", "UTC", "end"),  # empty
    ("2026-11-02T10:00", "", "UTC", "end"),  # open
    (None, "2026-11-02T10:00", "UTC", "start"),  # open
    ("2026-10-01T00:00", "2026-11-02T00:00", "UTC", "end"),  # 32 days
    ("2026-11-02T10:00", "2999-01-01T00:00", "UTC", "end"),  # the future
    ("0001-01-01T00:00+05:00", "2026-11-02T10:00", "UTC", "start"),  # year 1 east of UTC
    ("2026-11-02T10:00", "9999-12-31T23:00-05:00", "UTC", "end"),  # 9999 west of UTC
    ("\u0662\u0660\u0662\u0666-11-02T10:00", "2026-11-02T11:00", "UTC", "start"),  # Arabic-Indic
    ("2026-11-02T10:00\x00", "2026-11-02T11:00", "UTC", "start"),  # NUL
    ("2026-13-02T10:00", "2026-11-02T11:00", "UTC", "start"),  # no 13th month
    ("9" * 5000, "2026-11-02T11:00", "UTC", "start"),  # huge
    ("2026-11-02T10:00", "2026-11-02T11:00", "Mars/Olympus", "timezone"),
    ("2026-11-02T10:00", "2026-11-02T11:00", "Europe/Berlin\x00", "timezone"),
]


@pytest.mark.parametrize(("start", "end", "zone", "field"), BAD_RANGES)
def test_bad_ranges_are_refused_on_their_field(
    app: Flask, start: str | None, end: str, zone: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        window(start, end, zone, now=datetime(2026, 12, 3, tzinfo=UTC))
    assert field in raised.value.fields


def test_a_range_with_more_occurrences_than_the_bound_is_refused(app: Flask) -> None:
    schedule = factories.schedule(
        name="every-second", kind="interval", crontab=None, interval_every=1,
        interval_unit="seconds", start_at=datetime(2026, 11, 1, tzinfo=UTC),
    )  # fmt: skip
    db.session.commit()
    span = window("2026-11-02T10:00", "2026-11-02T11:00", "UTC")
    with pytest.raises(InvalidInput, match=str(MAX_OCCURRENCES)):
        listing(schedule, span)


def test_bad_inputs_on_the_page_are_a_400_with_nothing_written(
    app: Flask, client: FlaskClient, operator: str
) -> None:
    schedule = factories.schedule(name="hourly", crontab="0 * * * *")
    db.session.commit()
    url = f"/tasks/scheduled/{schedule.id}/backfill/"
    page = client.get(url, query_string={"start": "2026-11-02T12:00", "end": "2026-11-02T10:00"})
    assert page.status_code == 400
    assert "The end must come after the start." in page.text
    assert 'aria-invalid="true"' in page.text
    htmx = client.get(
        url,
        query_string={"start": "2026-10-01T00:00", "end": "2026-11-02T00:00"},
        headers=HTMX,
    )
    assert htmx.status_code == 200 and "at most 31 days" in htmx.text
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    good = {
        "start": (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "end": now.strftime("%Y-%m-%dT%H:%M"),
        "timezone": "UTC",
        "csrf_token": operator,
    }
    posts = [
        {**good, "occurrences": []},  # nothing chosen
        {**good, "occurrences": [str(int((now - timedelta(minutes=30)).timestamp() * 1000))]},
        {**good, "occurrences": ["\u0661\u0662\u0663"]},
        {**good, "occurrences": ["9" * 400]},
        {**good, "end": "2999-01-01T00:00", "occurrences": ["1"]},
        {**good, "timezone": "Nowhere/City"},
    ]
    for data in posts:
        answer = client.post(url, data=data)
        assert answer.status_code == 400, (data, answer.text[:300])
    assert run_rows(schedule.id) == []
    audited = db.session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == backfill.ACTION))  # fmt: skip
    assert audited == 0


def test_bad_inputs_on_the_api_are_a_4xx_with_nothing_written(
    app: Flask, client: FlaskClient, token_for: Callable[[Role], str]
) -> None:
    schedule = factories.schedule(name="hourly", crontab="0 * * * *")
    db.session.commit()
    auth = bearer(token_for(Role.OPERATOR))
    base = f"/tasks/api/scheduled/{schedule.id}/backfill/"
    bad_previews = [
        {"start": "2026-11-02T12:00:00Z", "end": "2026-11-02T10:00:00Z"},
        {"start": "2026-11-02T12:00:00Z"},
        {"start": "2026-11-02T12:00:00Z", "end": None},
        {"start": 5, "end": "2026-11-02T13:00:00Z"},
        {"start": "2026-11-02T12:00:00Z", "end": "2026-11-02T13:00:00Z", "timezone": "X/Y"},
        {"start": "2026-11-02T12:00:00Z", "end": "2026-11-02T13:00:00Z", "policy": "all"},
    ]
    for body in bad_previews:
        answer = client.post(base + "preview/", json=body, headers=auth)
        assert answer.status_code in (400, 422), (body, answer.json)
        assert answer.json["error"]["message"]
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    good = {"start": (now - timedelta(hours=3)).isoformat(), "end": now.isoformat()}
    bad_sends = [
        {**good, "occurrences": []},
        {**good, "occurrences": [(now - timedelta(minutes=7)).isoformat()]},
        {**good, "occurrences": ["0001-01-01T00:00:00+05:00"]},
        {**good, "occurrences": ["yesterday"]},
        good,
    ]
    for body in bad_sends:
        answer = client.post(base, json=body, headers=auth)
        assert answer.status_code in (400, 422), (body, answer.json)
    assert client.get(base + "99999999999999999999/", headers=auth).status_code == 404
    assert client.get(base + "12345/", headers=auth).status_code == 404
    assert run_rows(schedule.id) == []


def test_viewers_are_refused_page_and_api(
    app: Flask, client: FlaskClient, viewer: str, token_for: Callable[[Role], str]
) -> None:
    schedule = factories.schedule(name="hourly", crontab="0 * * * *")
    db.session.commit()
    url = f"/tasks/scheduled/{schedule.id}/backfill/"
    assert client.get(url).status_code == 403
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    occurrence = now - timedelta(hours=1)
    data = {"start": (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
            "end": now.strftime("%Y-%m-%dT%H:%M"), "csrf_token": viewer,
            "occurrences": [str(int(occurrence.timestamp() * 1000))]}  # fmt: skip
    assert client.post(url, data=data).status_code == 403
    auth = bearer(token_for(Role.VIEWER))
    body = {"start": data["start"], "end": data["end"], "occurrences": [occurrence.isoformat()]}
    api = f"/tasks/api/scheduled/{schedule.id}/backfill/"
    assert client.post(api + "preview/", json=body, headers=auth).status_code == 403
    assert client.post(api, json=body, headers=auth).status_code == 403
    assert run_rows(schedule.id) == []


# -- never twice ---------------------------------------------------------------------------------


def test_an_occurrence_chosen_twice_or_by_two_operators_at_once_is_claimed_once(
    app: Flask,
) -> None:
    schedule = factories.schedule(name="hourly", crontab="0 * * * *")
    db.session.commit()
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    moments = [now - timedelta(hours=h) for h in (3, 2, 1)]
    runs, skipped = claim(schedule, [moments[0], moments[0], moments[1]])
    db.session.commit()
    assert (len(runs), skipped) == (2, 0)
    schedule_id = schedule.id  # the threads must not touch this session's objects
    barrier = threading.Barrier(4)
    results: list[int] = []
    errors: list[BaseException] = []

    def operator_claims() -> None:
        with app.app_context():  # its own session and connection
            try:
                mine = db.session.get(ScheduledTask, schedule_id)
                barrier.wait(timeout=20)
                claimed, _ = claim(mine, moments)
                db.session.commit()
                results.append(len(claimed))
            except BaseException as exc:
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=operator_claims) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sorted(results) == [0, 0, 0, 1]
    assert sorted(r.occurrence for r in backfill_rows(schedule.id)) == moments


# -- the test: beat stopped for six hours, then a backfill with a real worker ------------


def test_a_backfill_after_beat_was_stopped_sends_each_missed_hour_once(
    app: Flask, client: FlaskClient, operator: str, redis_client, start_worker, start_recorder
) -> None:
    # An hourly schedule whose beat was down for the last six hours: the restarted beat records
    # them missed and sends one catch-up run for the latest (misfire policy run_once).
    if utcnow().minute == 59 and utcnow().second > 45:
        time.sleep(20)  # let the hour turn first
    hour = utcnow().replace(minute=0, second=0, microsecond=0)
    schedule = factories.schedule(name="hourly", crontab="0 * * * *", misfire_policy="run_once")
    db.session.commit()
    schedule.scheduled_from = hour - timedelta(hours=5, minutes=30)
    db.session.commit()
    get_store().remove(schedule.id)
    RedisScheduler(app.extensions["celery"]).tick()
    before = run_rows(schedule.id)
    assert [r.kind for r in before] == [RunKind.MISSED] * 5 + [RunKind.CATCHUP]
    assert before[-1].occurrence == hour

    start_recorder()
    start_worker(BACKFILL_PER_SECOND="20")
    url = f"/tasks/scheduled/{schedule.id}/backfill/"
    typed = {"start": (hour - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M"),
             "end": (hour + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")}  # fmt: skip
    if hour + timedelta(minutes=1) > utcnow():
        typed["end"] = utcnow().strftime("%Y-%m-%dT%H:%M:%S")
    page = client.get(url, query_string=typed)
    assert page.status_code == 200, page.text
    boxes = re.findall(r'<input type="checkbox" name="occurrences" value="(\d+)"[^>]*>', page.text)
    assert len(boxes) == 6
    checked = [v for v in boxes if f'value="{v}" id="occurrence-{v}" checked' in page.text]
    assert len(checked) == 5  # the catch-up's hour is marked already run
    assert "catch-up" in page.text
    # The operator sends every occurrence (the already-run one included) and again at once.
    data = {**typed, "timezone": "UTC", "csrf_token": operator, "occurrences": boxes + boxes[:2]}
    sent = client.post(url, data=data)
    assert sent.status_code == 303
    again = client.post(url, data=data)
    assert again.status_code == 303
    progress = client.get(sent.headers["Location"])
    assert progress.status_code == 200 and "backfill-progress" in progress.text

    def all_done() -> bool:
        rows = backfill_rows(schedule.id)
        return len(rows) == 5 and all(r.sent_at is not None for r in rows)

    wait_for(all_done, timeout=60)
    rows = backfill_rows(schedule.id)
    assert sorted(r.occurrence for r in rows) == [
        hour - timedelta(hours=h) for h in range(5, 0, -1)
    ]
    covered = [r for r in run_rows(schedule.id) if r.kind != RunKind.MISSED]
    assert len(covered) == 6 and len({r.occurrence for r in covered}) == 6  # none twice

    # Each was published as beat does, kind backfill, and ran as the root of its own run.
    def recorded() -> list[TaskExecution]:
        db.session.expire_all()
        query = select(TaskExecution).where(TaskExecution.run_kind == "backfill")
        found = list(db.session.scalars(query))
        return found if len(found) == 5 and all(e.completed_at for e in found) else []

    executions = wait_for(recorded, timeout=60)
    assert {e.task_id for e in executions} == {r.task_id for r in rows}
    assert {e.schedule_id for e in executions} == {schedule.id}
    assert {e.schedule_occurrence for e in executions} == {r.occurrence for r in rows}
    assert all(e.root_id in (None, e.task_id) for e in executions)

    def pipeline_runs() -> list[PipelineRun]:
        db.session.expire_all()
        query = select(PipelineRun).where(PipelineRun.root_task_id.in_([r.task_id for r in rows]))
        found = list(db.session.scalars(query))
        return found if len(found) == 5 and all(r.finished_at for r in found) else []

    linked = wait_for(pipeline_runs, timeout=30)
    assert {(r.schedule_id, r.run_kind) for r in linked} == {(schedule.id, "backfill")}
    assert all(r.steps_total == 1 for r in linked)  # not steps of the sending task's run
    assert db.session.scalar(select(func.count()).select_from(PipelineRun)) == 6  # + catch-up
    shown = client.get(f"/tasks/runs/{linked[0].id}/")
    assert shown.status_code == 200 and "backfill" in shown.text
    final = client.get(sent.headers["Location"])
    assert "data-hx-trigger" not in final.text  # no more polling once done
    entries = list(db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == backfill.ACTION).order_by(AuditEntry.id)))  # fmt: skip
    assert [(e.details["chosen"], e.details["skipped"]) for e in entries] == [(6, 1), (6, 6)]
    assert entries[0].actor_name == "operator"


def test_the_api_previews_sends_and_follows_a_backfill_in_the_openapi_document(
    app: Flask, client: FlaskClient, token_for: Callable[[Role], str]
) -> None:
    schedule = factories.schedule(name="hourly", crontab="0 * * * *")
    db.session.commit()
    auth = bearer(token_for(Role.OPERATOR))
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    ran = now - timedelta(hours=2)
    db.session.add(ScheduleRun(schedule_id=schedule.id, occurrence=ran, kind=RunKind.SCHEDULED,
                               task_id="done", sent_at=ran))  # fmt: skip
    db.session.commit()
    body = {"start": (now - timedelta(hours=3)).isoformat(), "end": now.isoformat()}
    base = f"/tasks/api/scheduled/{schedule.id}/backfill/"
    preview = client.post(base + "preview/", json=body, headers=auth)
    assert preview.status_code == 200, preview.json
    assert preview.json["to_send"] == 2
    assert [(o["already_run"], o["run_kind"]) for o in preview.json["occurrences"]] == [
        (False, None), (True, "scheduled"), (False, None),
    ]  # fmt: skip
    assert run_rows(schedule.id)[0].task_id == "done"  # a preview writes nothing
    wanted = [o["occurrence"] for o in preview.json["occurrences"]]
    # No worker consumes the maintenance queue here: the runs stay claimed, waiting.
    sent = client.post(base, json={**body, "occurrences": wanted}, headers=auth)
    assert sent.status_code == 202, sent.json
    assert (sent.json["chosen"], sent.json["skipped"], sent.json["waiting"]) == (3, 1, 2)
    followed = client.get(f"{base}{sent.json['backfill_id']}/", headers=auth)
    assert followed.status_code == 200 and len(followed.json["runs"]) == 2
    assert len(backfill_rows(schedule.id)) == 2
    page = client.get(f"/tasks/scheduled/{schedule.id}/")
    assert f"/tasks/scheduled/{schedule.id}/backfill/" not in page.text  # not signed in
    spec = client.get("/tasks/api/openapi.json", headers=auth).json
    paths = spec["paths"]
    assert "post" in paths["/tasks/api/scheduled/{schedule_id}/backfill/preview/"]
    assert "post" in paths["/tasks/api/scheduled/{schedule_id}/backfill/"]
    assert "get" in paths["/tasks/api/scheduled/{schedule_id}/backfill/{backfill_id}/"]


@pytest.mark.parametrize("language", ["fr", "es", "ar"])
def test_the_backfill_pages_speak_the_chosen_language(
    app: Flask, client: FlaskClient, operator: str, language: str
) -> None:
    schedule = factories.schedule(name="hourly", crontab="0 * * * *", timezone="Europe/Berlin")
    db.session.commit()
    client.post("/tasks/preferences", data={"language": language, "csrf_token": operator})
    now = utcnow().replace(minute=0, second=0, microsecond=0).astimezone(BERLIN)
    url = f"/tasks/scheduled/{schedule.id}/backfill/"
    typed = {"start": (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
             "end": now.strftime("%Y-%m-%dT%H:%M")}  # fmt: skip
    page = client.get(url, query_string=typed)
    assert page.status_code == 200
    words = {"fr": "Rattrapage", "es": "Recuperación", "ar": "استدراك"}[language]
    assert words in page.text and "Backfill" not in page.text.split("<main", 1)[-1]
    assert len(re.findall(r'name="occurrences"', page.text)) == 2
    detail = client.get(f"/tasks/scheduled/{schedule.id}/")
    assert url in detail.text


def test_a_redelivered_sending_task_sends_nothing_twice(app: Flask, redis_client) -> None:
    from app.tasks.maintenance import send_backfill

    schedule = factories.schedule(name="hourly", crontab="0 * * * *")
    db.session.commit()
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    runs, _ = claim(schedule, [now - timedelta(hours=2), now - timedelta(hours=1)])
    db.session.commit()
    task_ids = [r.task_id for r in runs]
    assert send_backfill.run(schedule.id, task_ids)["sent"] == 2
    assert send_backfill.run(schedule.id, task_ids)["sent"] == 0  # redelivered
    published = [h for h in scheduled_headers(redis_client) if h["ewas_run_kind"] == "backfill"]
    assert sorted(h["id"] for h in published) == sorted(task_ids)
    assert {h["ewas_schedule_id"] for h in published} == {schedule.id}
    assert all(r.sent_at is not None for r in backfill_rows(schedule.id))
