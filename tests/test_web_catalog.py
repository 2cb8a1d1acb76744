"""Catalogue pages: task types (descriptions in every language, roll-up counts), sources and
variables (forms with errors beside the fields, deactivate, delete refused while referenced)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import (
    AuditEntry,
    ExecutionHourly,
    Role,
    Source,
    TaskType,
    Variable,
)
from app.models.types import utcnow
from tests import factories
from tests.factories import type_named


def field_block(page: str, name: str) -> str:
    """The rendered field ``name`` (label, input, errors), unescaped."""
    match = re.search(rf'<div class="field[^"]*">\s*<label for="{name}">.*?</div>', page, re.S)
    assert match, f"no field {name} in the page"
    return html.unescape(match.group(0))


def assert_error_beside(page: str, name: str, message: str) -> None:
    block = field_block(page, name)
    assert 'class="field has-error"' in block and 'class="field-error"' in block, block
    assert message in block, block


def flashes(client: FlaskClient, path: str) -> str:
    return html.unescape(client.get(path).text)


def actions() -> set[str]:
    return set(db.session.scalars(select(AuditEntry.action)))


# --- task types -----------------------------------------------------------------------------


def test_task_types_list_descriptions_tasks_and_rollup_counts(
    client: FlaskClient, viewer: str
) -> None:
    hour = utcnow().replace(minute=0, second=0, microsecond=0)
    db.session.add_all(
        [
            ExecutionHourly(hour=hour, task_type="retrieval", task_name="a", success=5, failure=2),
            ExecutionHourly(
                hour=hour - timedelta(days=3), task_type="retrieval", task_name="a", success=10
            ),
            ExecutionHourly(
                hour=hour - timedelta(days=10), task_type="retrieval", task_name="a", success=99
            ),
        ]
    )
    db.session.commit()
    response = client.get("/tasks/types/")
    assert response.status_code == 200
    page = html.unescape(response.text)
    for name in ("retrieval", "processing", "aggregation", "monitoring", "maintenance"):
        assert f'<code class="ltr" dir="ltr">{name}</code>' in page
    row = page.split(f'id="type-{type_named("retrieval").id}"')[1].split("</tr>")[0]
    # Every language, English (the reader's) first.
    texts = [
        "Fetch raw data from external sources",
        "Récupère les données brutes",
        "Obtiene datos brutos",
        "جلب البيانات الخام",
    ]
    positions = [row.index(text) for text in texts]
    assert positions == sorted(positions)
    assert 'lang="ar" dir="rtl"' in row
    # Its tasks and their queues, from the Celery app.
    assert 'retrieve_source</code></a> → <code class="queue ltr" dir="ltr">data_retrieval' in row
    assert 'href="/tasks/durations/data_pipeline.tasks.retrieve_source/"' in row
    # Roll-ups: 7 finished and 2 failed in 24 h, 17 in 7 days (the 10-day-old hour is left out).
    numbers = re.findall(r'<td class="num">([^<]*)</td>', row)
    assert numbers[:3] == ["7", "2", "17"]
    assert numbers[3] == "88.2%"
    # A viewer reads only.
    assert "/edit/" not in page and "Delete" not in page


def test_task_types_show_the_readers_language_first(client: FlaskClient, viewer: str) -> None:
    csrf = client.get("/tasks/types/").text
    from tests.support import csrf_token_in

    response = client.post(
        "/tasks/preferences",
        data={"language": "fr", "next": "/tasks/types/", "csrf_token": csrf_token_in(csrf)},
    )
    assert response.status_code == 303
    page = html.unescape(client.get("/tasks/types/").text)
    row = page.split(f'id="type-{type_named("processing").id}"')[1].split("</tr>")[0]
    french = row.index("Transforme les données brutes")
    assert french < row.index("Transform raw data into the standard format")
    assert french < row.index("Transforma los datos brutos")


def test_operator_edits_task_type_descriptions(client: FlaskClient, operator: str) -> None:
    page = client.get("/tasks/types/").text
    retrieval = type_named("retrieval")
    assert f"/tasks/types/{retrieval.id}/edit/" in page
    form = client.get(f"/tasks/types/{retrieval.id}/edit/")
    assert form.status_code == 200 and "Récupère les données brutes" in html.unescape(form.text)
    response = client.post(
        f"/tasks/types/{retrieval.id}/edit/",
        data={
            "description_en": "Fetch things.",
            "description_fr": "Récupère des choses.",
            "description_es": "",
            "description_ar": "جلب الأشياء",
            "csrf_token": operator,
        },
    )
    assert response.status_code == 303 and response.headers["Location"] == "/tasks/types/"
    db.session.expire_all()
    retrieval = type_named("retrieval")
    assert retrieval.description_fr == "Récupère des choses."
    assert retrieval.description_es is None  # empty falls back to English when read
    assert "task_type.update" in actions()
    assert "Task type retrieval saved." in flashes(client, "/tasks/types/")


@pytest.mark.parametrize(
    ("value", "message"),
    [("x" * 4001, "Field cannot be longer than 4000 characters."), ("a\x00b", "NUL character")],
)
def test_task_type_form_errors_beside_the_field(
    client: FlaskClient, operator: str, value: str, message: str
) -> None:
    type_id = type_named("processing").id
    response = client.post(
        f"/tasks/types/{type_id}/edit/", data={"description_fr": value, "csrf_token": operator}
    )
    assert response.status_code == 422
    assert_error_beside(response.text, "description_fr", message)
    db.session.expire_all()
    assert type_named("processing").description_fr.startswith("Transforme")


def test_task_type_delete_refused_while_declared_or_used(
    client: FlaskClient, operator: str
) -> None:
    legacy, old = TaskType(name="legacy"), TaskType(name="old_imports")
    db.session.add_all([legacy, old])
    db.session.commit()
    factories.execution(task_name="x.tasks.y", task_type_id=legacy.id)
    db.session.commit()
    page = client.get("/tasks/types/").text
    assert f"/tasks/types/{old.id}/delete/" in page
    assert f"/tasks/types/{type_named('retrieval').id}/delete/" not in page  # declared in code

    response = client.post(f"/tasks/types/{legacy.id}/delete/", data={"csrf_token": operator})
    assert response.status_code == 303
    assert "Task type legacy has executions and cannot be deleted." in flashes(
        client, "/tasks/types/"
    )
    retrieval = type_named("retrieval")
    client.post(f"/tasks/types/{retrieval.id}/delete/", data={"csrf_token": operator})
    assert "Task type retrieval is declared by tasks in the code" in flashes(
        client, "/tasks/types/"
    )
    response = client.post(f"/tasks/types/{old.id}/delete/", data={"csrf_token": operator})
    assert response.status_code == 303
    assert "Task type old_imports deleted." in flashes(client, "/tasks/types/")
    db.session.expire_all()
    assert type_named("legacy") and type_named("retrieval") and type_named("old_imports") is None
    assert "task_type.delete" in actions()


def test_task_type_edit_needs_an_operator(client: FlaskClient, viewer: str) -> None:
    type_id = type_named("retrieval").id
    assert client.get(f"/tasks/types/{type_id}/edit/").status_code == 403
    response = client.post(f"/tasks/types/{type_id}/delete/", data={"csrf_token": viewer})
    assert response.status_code == 403
    assert type_named("retrieval") is not None


# --- sources --------------------------------------------------------------------------------

SOURCE = {
    "code": "hazards",
    "name": "Hazard feed",
    "source_type": "api",
    "base_url": "https://hazards.example.org/v2",
    "is_active": "y",
    "description_en": "Hazard events.",
    "description_ar": "أحداث المخاطر",
}


def test_operator_creates_lists_and_edits_a_source(client: FlaskClient, operator: str) -> None:
    form = client.get("/tasks/sources/new/")
    assert form.status_code == 200
    for name in ("code", "base_url"):  # code and URLs are typed left to right, also in Arabic
        assert 'dir="ltr"' in re.search(rf'<input[^>]*id="{name}"[^>]*>', form.text).group(0)
    response = client.post("/tasks/sources/new/", data={**SOURCE, "csrf_token": operator})
    assert response.status_code == 303
    source = db.session.scalar(select(Source).where(Source.code == "hazards"))
    assert response.headers["Location"] == f"/tasks/sources/{source.id}/"
    assert source.base_url == "https://hazards.example.org/v2" and source.is_active
    assert source.description_ar == "أحداث المخاطر" and source.description_fr is None
    detail = flashes(client, response.headers["Location"])
    assert "Source hazards created." in detail and "أحداث المخاطر" in detail
    listing = client.get("/tasks/sources/").text
    assert "Hazard feed" in listing and f"/tasks/sources/{source.id}/" in listing

    response = client.post(
        f"/tasks/sources/{source.id}/edit/",
        data={**SOURCE, "name": "Hazard feed v3", "base_url": "", "csrf_token": operator},
    )
    assert response.status_code == 303
    db.session.expire_all()
    assert source.name == "Hazard feed v3" and source.base_url is None
    assert {"source.create", "source.update"} <= actions()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"code": "idmc"}, "code", "A source with code idmc already exists."),
        ({"name": "internal displacement"}, "name", "A source named internal displacement"),
        ({"base_url": "not a url"}, "base_url", "Enter a valid http:// or https:// address."),
        ({"base_url": "ftp://files.example.org/"}, "base_url", "Enter a valid http://"),
        ({"code": ""}, "code", "This field is required."),
        ({"name": "   "}, "name", "This field is required."),
        ({"code": "Bad Code"}, "code", "Use lowercase letters, digits and underscores"),
        ({"code": "class"}, "code", "must be a lowercase Python identifier"),
        ({"name": "x" * 201}, "name", "Field cannot be longer than 200 characters."),
        ({"name": "nul\x00"}, "name", "NUL character"),
    ],
)
def test_source_form_errors_beside_the_fields(
    client: FlaskClient, operator: str, changes: dict, field: str, message: str
) -> None:
    factories.source("idmc", name="Internal displacement")
    db.session.commit()
    response = client.post(
        "/tasks/sources/new/", data={**SOURCE, **changes, "csrf_token": operator}
    )
    assert response.status_code == 422
    assert_error_beside(response.text, field, message)
    assert db.session.scalar(select(Source).where(Source.code == "hazards")) is None


def test_the_service_checks_addresses_for_every_caller(app: object) -> None:
    from app.errors import InvalidInput
    from app.services import catalog

    values = {"code": "x", "name": "X", "source_type": "api", "base_url": "ftp://x.org/"}
    with pytest.raises(InvalidInput) as raised:
        catalog.create_source(values)
    assert list(raised.value.fields) == ["base_url"]
    db.session.rollback()


def test_source_edit_refuses_another_sources_name(client: FlaskClient, operator: str) -> None:
    factories.source("idmc", name="Internal displacement")
    other = factories.source("hazards", name="Hazard feed")
    db.session.commit()
    response = client.post(
        f"/tasks/sources/{other.id}/edit/",
        data={**SOURCE, "name": "Internal displacement", "csrf_token": operator},
    )
    assert response.status_code == 422
    assert_error_beside(response.text, "name", "A source named Internal displacement")
    db.session.expire_all()
    assert other.name == "Hazard feed"


def test_deactivate_and_reactivate_a_source(client: FlaskClient, operator: str) -> None:
    source = factories.source()
    db.session.commit()
    response = client.post(f"/tasks/sources/{source.id}/deactivate/", data={"csrf_token": operator})
    assert response.status_code == 303
    db.session.expire_all()
    assert source.is_active is False
    page = flashes(client, f"/tasks/sources/{source.id}/")
    assert "Source idmc deactivated." in page and "Reactivate" in page
    client.post(f"/tasks/sources/{source.id}/reactivate/", data={"csrf_token": operator})
    db.session.expire_all()
    assert source.is_active is True
    assert {"source.deactivate", "source.reactivate"} <= actions()


def test_source_delete_refused_while_referenced(client: FlaskClient, operator: str) -> None:
    source = factories.source()
    variable = factories.variable(source)
    db.session.commit()
    url = f"/tasks/sources/{source.id}/delete/"
    response = client.post(url, data={"csrf_token": operator})
    assert response.status_code == 303
    assert "Source idmc still has variables" in flashes(client, f"/tasks/sources/{source.id}/")

    db.session.delete(variable)
    db.session.commit()
    run = factories.execution(task_name="x.tasks.y", source_id=source.id)
    db.session.commit()
    client.post(url, data={"csrf_token": operator})
    page = flashes(client, f"/tasks/sources/{source.id}/")
    assert "Source idmc is referenced by executions or stored data and cannot be deleted" in page
    assert db.session.get(Source, source.id) is not None

    db.session.delete(run)
    db.session.commit()
    response = client.post(url, data={"csrf_token": operator})
    assert response.status_code == 303 and response.headers["Location"] == "/tasks/sources/"
    assert "Source idmc deleted." in flashes(client, "/tasks/sources/")
    db.session.expire_all()
    assert db.session.get(Source, source.id) is None
    assert "source.delete" in actions()


# --- variables ------------------------------------------------------------------------------

VARIABLE = {"code": "stock", "name": "Stock of IDPs", "endpoint_path": "/stock/", "is_active": "y"}


def test_variables_are_created_and_edited_under_their_source(
    client: FlaskClient, operator: str
) -> None:
    source, other = factories.source("idmc"), factories.source("hazards")
    factories.variable(other, "stock")  # the same code under another source is fine
    db.session.commit()
    new = f"/tasks/sources/{source.id}/variables/new/"
    assert client.get(new).status_code == 200
    response = client.post(new, data={**VARIABLE, "csrf_token": operator})
    assert response.status_code == 303
    variable = db.session.scalar(select(Variable).where(Variable.source_id == source.id))
    assert variable.code == "stock" and variable.endpoint_path == "/stock/"
    assert "Stock of IDPs" in client.get(f"/tasks/sources/{source.id}/").text

    response = client.post(new, data={**VARIABLE, "csrf_token": operator})
    assert response.status_code == 422
    assert_error_beside(response.text, "code", "Source idmc already has a variable with code stock")
    response = client.post(
        new, data={**VARIABLE, "code": "x", "endpoint_path": "https://x/", "csrf_token": operator}
    )
    assert_error_beside(response.text, "endpoint_path", "Enter a path relative")

    edit = f"/tasks/sources/{source.id}/variables/{variable.id}/edit/"
    assert client.get(edit).status_code == 200
    response = client.post(
        edit, data={**VARIABLE, "name": "IDP stock", "is_active": "", "csrf_token": operator}
    )
    assert response.status_code == 303
    db.session.expire_all()
    assert variable.name == "IDP stock" and variable.is_active is False
    assert {"variable.create", "variable.update"} <= actions()


def test_variable_deactivate_and_delete_refused_while_referenced(
    client: FlaskClient, operator: str
) -> None:
    source = factories.source()
    variable = factories.variable(source)
    db.session.commit()
    base = f"/tasks/sources/{source.id}/variables/{variable.id}"
    assert client.post(f"{base}/deactivate/", data={"csrf_token": operator}).status_code == 303
    db.session.expire_all()
    assert variable.is_active is False
    client.post(f"{base}/reactivate/", data={"csrf_token": operator})
    db.session.expire_all()
    assert variable.is_active is True

    run = factories.execution(task_name="x.tasks.y", variable_id=variable.id)
    db.session.commit()
    assert client.post(f"{base}/delete/", data={"csrf_token": operator}).status_code == 303
    page = flashes(client, f"/tasks/sources/{source.id}/")
    assert "Variable idu is referenced by executions or stored data" in page
    assert db.session.get(Variable, variable.id) is not None

    db.session.delete(run)
    db.session.commit()
    assert client.post(f"{base}/delete/", data={"csrf_token": operator}).status_code == 303
    db.session.expire_all()
    assert db.session.get(Variable, variable.id) is None
    assert {"variable.deactivate", "variable.reactivate", "variable.delete"} <= actions()


def test_bad_ids_are_404(client: FlaskClient, operator: str) -> None:
    source, other = factories.source("idmc"), factories.source("hazards")
    variable = factories.variable(other)
    db.session.commit()
    huge = 10**30
    for path in (
        "/tasks/sources/999999/",
        f"/tasks/sources/{huge}/",
        "/tasks/sources/999999/edit/",
        "/tasks/types/999999/edit/",
        f"/tasks/types/{huge}/edit/",
        f"/tasks/sources/{source.id}/variables/{variable.id}/edit/",  # not this source's
        f"/tasks/sources/{other.id}/variables/999999/edit/",
    ):
        assert client.get(path).status_code == 404, path
    for path in (
        "/tasks/sources/999999/delete/",
        f"/tasks/sources/{huge}/deactivate/",
        "/tasks/types/999999/delete/",
        f"/tasks/sources/{source.id}/variables/{variable.id}/delete/",
    ):
        assert client.post(path, data={"csrf_token": operator}).status_code == 404, path
    assert db.session.get(Variable, variable.id) is not None


def test_viewer_reads_but_cannot_write(client: FlaskClient, viewer: str) -> None:
    source = factories.source()
    variable = factories.variable(source)
    db.session.commit()
    page = client.get(f"/tasks/sources/{source.id}/").text
    assert "Variable idu" in page and "Deactivate" not in page and "/edit/" not in page
    assert "Add a source" not in client.get("/tasks/sources/").text
    for path in ("/tasks/sources/new/", f"/tasks/sources/{source.id}/edit/"):
        assert client.get(path).status_code == 403
    for path in (
        "/tasks/sources/new/",
        f"/tasks/sources/{source.id}/deactivate/",
        f"/tasks/sources/{source.id}/delete/",
        f"/tasks/sources/{source.id}/variables/{variable.id}/delete/",
    ):
        assert client.post(path, data={**SOURCE, "csrf_token": viewer}).status_code == 403
    db.session.expire_all()
    assert source.is_active and db.session.get(Variable, variable.id) is not None


def test_anonymous_goes_to_login_and_csrf_is_required(
    client: FlaskClient, login_as: Callable
) -> None:
    for path in ("/tasks/types/", "/tasks/sources/"):
        response = client.get(path)
        assert response.status_code == 302 and "/tasks/login/" in response.headers["Location"]
    login_as(client, Role.OPERATOR)
    response = client.post("/tasks/sources/new/", data=SOURCE)
    assert response.status_code == 400
    assert db.session.scalar(select(Source)) is None
