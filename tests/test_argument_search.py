"""Search by argument values: the syntax, nested and list arguments, numbers against text,
redacted values refused, bad input refused clearly, on the page and in the API, on SQLite and on
PostgreSQL (where the GIN indexes on the arguments answer)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from app.extensions import db
from app.models import TaskExecution, TaskStatus
from app.services import argument_search, executions, search_plan
from app.tracking.capture import REDACTED, capture_arguments
from tests import factories

BASE = datetime(2026, 1, 1, tzinfo=UTC)
API = "/tasks/api/executions/"
LIST = "/tasks/executions/"

ARGUMENTS: dict[str, tuple[Any, Any]] = {
    "positional": ([3, "AFG"], {}),
    "keywords": ([], {"source_id": 3, "country": "AFG"}),
    "nested": ([], {"source_id": "3", "filters": {"country": "SDN", "years": [2020, 2021]}}),
    "dict_in_list": (
        [{"source_id": 4, "options": {"country": "South Sudan"}}],
        {"tags": ["flood", "AFG"]},
    ),
    "constants": ([], {"source_id": 30, "flag": True, "missing": None, "ratio": 2.5}),
    "text": (["3"], {"note": "source_id=3", "big": "99999999999999999999", "path": "C:\\data"}),
}


@pytest.fixture
def stored(app: Flask) -> dict[str, str]:
    """One execution per entry of ARGUMENTS, plus one whose api_key was redacted: name -> id."""
    ids = {}
    for minute, (name, (args, kwargs)) in enumerate(ARGUMENTS.items()):
        ids[name] = factories.execution(
            args=args, kwargs=kwargs, created_at=BASE + timedelta(minutes=minute)
        ).task_id
    captured = capture_arguments([], {"api_key": "s3cret", "country": "AFG"})
    assert captured["kwargs"]["api_key"] == REDACTED
    ids["redacted"] = factories.execution(
        args=captured["args"],
        kwargs=captured["kwargs"],
        created_at=BASE + timedelta(minutes=30),
        status=TaskStatus.FAILURE,
    ).task_id
    db.session.commit()
    return ids


def found(stored: dict[str, str], search: str | list[str], **filters: Any) -> set[str]:
    """The names of the stored executions the search finds, through the service."""
    terms = argument_search.parse(search)
    page = executions.page({"arg": terms, "page_size": 100, **filters})
    by_id = {task_id: name for name, task_id in stored.items()}
    return {by_id[row.task_id] for row in page["items"]}


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        # name=value: keyword arguments and keys of dicts, at any depth; 3 also finds "3"
        ("source_id=3", {"keywords", "nested"}),
        ("country=AFG", {"keywords", "redacted"}),
        ('country="South Sudan"', {"dict_in_list"}),
        ("country='South Sudan'", {"dict_in_list"}),
        ("years=2021", {"nested"}),  # a key holding a list that contains the value
        ("tags=AFG", {"dict_in_list"}),
        ("source_id=4", {"dict_in_list"}),
        # a value alone: anywhere, positional arguments included
        ("AFG", {"positional", "keywords", "dict_in_list", "redacted"}),
        ("3", {"positional", "keywords", "nested", "text"}),
        ("2020", {"nested"}),
        # every term must match
        ("source_id=3 country=AFG", {"keywords"}),
        (["source_id=3", "country=AFG"], {"keywords"}),
        # constants and decimals match the JSON value and the same text
        ("flag=true", {"constants"}),
        ("missing=null", {"constants"}),
        ("ratio=2.5", {"constants"}),
        ("ratio=2.50", {"constants"}),
        ("ratio=25e-1", {"constants"}),
        # exact, case-sensitive, whole values
        ("country=afg", set()),
        ("country=South", set()),
        ("source_id=3.5", set()),
        ("note=source_id=3", {"text"}),  # only the first = splits
        # beyond 2^53 a number is text only; Arabic-Indic digits are text, not 3
        ("big=99999999999999999999", {"text"}),
        ("٣", set()),
        (r"path=C:\data", {"text"}),  # backslashes are kept as typed
        ("nowhere=3", set()),
    ],
)
def test_search_finds_what_the_syntax_says(
    stored: dict[str, str], search: str | list[str], expected: set[str]
) -> None:
    assert found(stored, search) == expected


@pytest.mark.parametrize(
    ("probe", "match_cost"),
    [(1, 10.0), (2, 10.0), (1, 1e12), (2, 1e12), (3, 1e12), (5000, 10.0)],
)
@pytest.mark.parametrize("search", ["AFG", "3", "country=AFG", "source_id=3 country=AFG", "none"])
def test_pages_walk_the_same_matches_whatever_the_plan(
    monkeypatch: pytest.MonkeyPatch,
    stored: dict[str, str],
    search: str,
    probe: int,
    match_cost: float,
) -> None:
    """On PostgreSQL a search tests the newest rows in order, then goes on in order or asks the
    indexes (a huge match cost makes it go on in order): pages of two, forwards and back, give
    the matches newest first however that goes."""
    monkeypatch.setattr(search_plan, "PROBE", probe)
    monkeypatch.setattr(search_plan, "MATCH_COST", match_cost)
    expected = found(stored, search)
    terms = argument_search.parse(search)
    pages, cursor = [], None
    while True:
        page = executions.page({"arg": terms, "page_size": 2, "cursor": cursor})
        pages.append([row.task_id for row in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    walked = [task_id for items in pages for task_id in items]
    by_id = {task_id: name for name, task_id in stored.items()}
    assert {by_id[t] for t in walked} == expected and len(walked) == len(expected)
    created = {row.task_id: row.created_at for row in db.session.scalars(select(TaskExecution))}
    assert walked == sorted(walked, key=lambda t: created[t], reverse=True)
    if len(pages) > 1:
        back = executions.page({"arg": terms, "page_size": 2, "cursor": page["previous_cursor"]})
        assert [row.task_id for row in back["items"]] == pages[-2]


def test_combined_with_the_other_filters(stored: dict[str, str]) -> None:
    assert found(stored, "AFG", status=[TaskStatus.FAILURE]) == {"redacted"}
    assert found(stored, "AFG", created_from=BASE + timedelta(minutes=2)) == {
        "dict_in_list",
        "redacted",
    }
    assert found(stored, "AFG", task_name="other") == set()


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ("api_key=s3cret", "stored redacted"),
        ("password=x", "stored redacted"),
        (REDACTED, "Redacted values"),
        ("token=" + REDACTED, "stored redacted"),
        ("=3", "before the = sign"),
        ('country="AFG', "quote is not closed"),
        ("a\x00b", "Control characters"),
        ("x" * 501, "at most 500 characters"),
        ("k=" + "v" * 201, "at most 200 characters"),
        (" ".join(f"k{i}=1" for i in range(9)), "at most 8 terms"),
    ],
)
def test_bad_searches_are_refused_clearly(search: str, message: str) -> None:
    with pytest.raises(argument_search.BadArgumentSearch, match=message):
        argument_search.parse(search)


def test_api_searches_and_refuses(
    client: FlaskClient, stored: dict[str, str], api_viewer: dict[str, str]
) -> None:
    answer = client.get(
        f"{API}?arg=source_id%3D3&arg=country%3DAFG&page_size=10", headers=api_viewer
    )
    assert answer.status_code == 200
    assert [item["task_id"] for item in answer.json["items"]] == [stored["keywords"]]
    both = client.get(f"{API}?arg={quote('AFG')}&status=failure", headers=api_viewer)
    assert [item["task_id"] for item in both.json["items"]] == [stored["redacted"]]
    for bad in ("password%3Dx", "a%00b", quote('"open'), "x" * 600):
        refused = client.get(f"{API}?arg={bad}", headers=api_viewer)
        assert refused.status_code == 422, bad
        assert refused.json["error"]["fields"]["arg"], bad
    spec = client.get("/tasks/api/openapi.json", headers=api_viewer).json
    parameters = spec["paths"]["/tasks/api/executions/"]["get"]["parameters"]
    search = next(p for p in parameters if p["name"] == "arg")
    assert "name=value" in search["description"]


def test_page_searches_keeps_the_search_in_its_links_and_refuses(
    client: FlaskClient, stored: dict[str, str], viewer: str
) -> None:
    page = client.get(f"{LIST}?arg={quote('country=AFG')}&status=success")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert stored["keywords"] in html and stored["redacted"] not in html
    assert stored["positional"] not in html
    assert 'value="country=AFG"' in html
    assert "arg=country%3DAFG" in html  # the polled table and the export keep the search
    assert "name=value" in html  # the help text
    export = client.get(f"/tasks/executions/export?format=json&arg={quote('country=AFG')}")
    assert export.status_code == 200
    exported = export.get_data(as_text=True)
    assert stored["keywords"] in exported and stored["redacted"] in exported
    assert stored["positional"] not in exported
    for bad, message in (("password=x", "stored redacted"), ('"open', "quote is not closed")):
        refused = client.get(f"{LIST}?arg={quote(bad)}")
        assert refused.status_code == 400
        assert message in refused.get_data(as_text=True)


def test_postgresql_answers_from_the_gin_indexes(app: Flask, stored: dict[str, str]) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the GIN indexes exist on PostgreSQL only")
    query = executions.filtered({"arg": argument_search.parse("country=AFG")})
    compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
    with db.engine.begin() as connection:
        connection.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(row[0] for row in connection.execute(text(f"EXPLAIN {compiled}")).all())
    assert re.search(r"Bitmap Index Scan on ix_task_executions_kwargs_jsonb", plan), plan
    assert re.search(r"Bitmap Index Scan on ix_task_executions_args_jsonb", plan), plan


def test_the_index_path_leaves_the_planner_as_it_found_it(
    monkeypatch: pytest.MonkeyPatch, stored: dict[str, str]
) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL's search turns the ordered scan off for one query")
    monkeypatch.setattr(search_plan, "PROBE", 1)
    assert found(stored, "country=AFG") == {"keywords", "redacted"}
    assert db.session.scalar(text("SHOW enable_indexscan")) == "on"
