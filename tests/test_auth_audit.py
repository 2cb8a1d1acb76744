"""The audit log: entries carry actor, target and outcome; admins page and filter them."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from app.extensions import db
from app.models import AuditEntry, Role, User
from app.services.audit import record_audit


def test_record_audit_takes_the_signed_in_user(
    client: FlaskClient, login_as: Callable, users: dict[Role, User]
) -> None:
    entry = record_audit("execution.retry", "task_execution", "abc", outcome="error")
    assert entry.actor_name == "system" and entry.actor_id is None
    login_as(client, Role.OPERATOR)
    with client:
        client.get("/tasks/")
        entry = record_audit("execution.cancel", "task_execution", 42, details={"why": "stuck"})
    db.session.commit()
    assert entry.actor_id == users[Role.OPERATOR].id and entry.target_id == "42"
    assert entry.created_at is not None and entry.outcome == "ok"


def test_audit_page_pages_newest_first_and_filters(
    client: FlaskClient, login_as: Callable, users: dict[Role, User]
) -> None:
    for number in range(60):
        record_audit("schedule.update", "schedule", number, actor=users[Role.OPERATOR])
    record_audit("execution.retry", "task_execution", "<b>x</b>", actor=users[Role.ADMIN])
    db.session.commit()
    login_as(client, Role.ADMIN)

    first = client.get("/tasks/audit/?action=schedule.update")
    assert first.status_code == 200
    assert "schedule 59" in first.text and "schedule 10" in first.text
    assert "schedule 9<" not in first.text
    assert first.text.index("schedule 59") < first.text.index("schedule 58")
    assert "Older entries" in first.text
    newest_ten = db.session.query(AuditEntry).filter_by(target_id="10").one()
    second = client.get(f"/tasks/audit/?action=schedule.update&before={newest_ten.id}")
    assert "schedule 9<" in second.text and "schedule 0<" in second.text
    assert "Older entries" not in second.text

    by_admin = client.get("/tasks/audit/?user=admin").text
    assert "&lt;b&gt;x&lt;/b&gt;" in by_admin and "schedule 5" not in by_admin


def test_audit_page_survives_bad_query_args(client: FlaskClient, login_as: Callable) -> None:
    login_as(client, Role.ADMIN)
    for query in ["action=" + "x" * 500, "user=%00"]:
        assert client.get(f"/tasks/audit/?{query}").status_code == 200, query
    for query in ["before=abc", "before=-1", "before=%C2%B2", f"before={2**63}"]:  # as every pager
        assert client.get(f"/tasks/audit/?{query}").status_code == 400, query
