"""The template layout rule of the README's architecture section, checked over the files so it
cannot rot: each operator screen is a folder ``tasks/<screen>/`` whose main page is ``page.html``;
its other full pages have plain names, its fragments and macros start with ``_``; partials shared
by several screens sit in ``tasks/`` itself. The ``admin/``, ``auth/`` and ``errors/`` screens are
one full page each (``admin/users.html``); one that needs a second template becomes a folder.
A full page extends ``base.html``, a fragment never does, and every name the code or a template
gives exists (and every template is named somewhere)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"
TEMPLATES = APP / "templates"
AREAS = {"tasks", "admin", "auth", "errors"}
# {% include "x" %}, {% import "x" as y %}, {% from "x" import y %}, {% extends "x" %}
JINJA_NAME = re.compile(r"""\{%-?\s*(?:include|import|from|extends)\s+["']([^"']+)["']""")
EXTENDS_BASE = re.compile(r"""\A(?:\{#.*?#\}\s*)*\{%-?\s*extends\s+["']base\.html["']""", re.S)


def templates() -> list[str]:
    return sorted(p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.html"))


def layout_problems(names: list[str]) -> list[str]:
    """What breaks the folder and naming rule in ``names`` (paths under app/templates)."""
    problems = []
    screens: set[str] = set()
    for name in names:
        parts = name.split("/")
        file = parts[-1]
        if len(parts) == 1:
            if name != "base.html":
                problems.append(f"{name}: only base.html sits at the top")
        elif parts[0] not in AREAS:
            problems.append(f"{name}: not in one of {sorted(AREAS)}")
        elif len(parts) == 2:
            if parts[0] == "tasks" and not file.startswith("_"):
                problems.append(f"{name}: an operator page belongs in tasks/<screen>/")
            if parts[0] != "tasks" and file.startswith("_"):
                problems.append(f"{name}: a screen with a fragment is a folder <area>/<screen>/")
        elif len(parts) == 3:
            screens.add("/".join(parts[:2]))
        else:
            problems.append(f"{name}: screens are one folder deep")
    problems += [f"{s}/: no page.html" for s in sorted(screens) if f"{s}/page.html" not in names]
    return problems


def test_every_template_follows_the_layout_rule() -> None:
    assert layout_problems(templates()) == []


def test_full_pages_extend_base_and_fragments_do_not() -> None:
    wrong = []
    for name in templates():
        if name == "base.html":
            continue
        full = bool(EXTENDS_BASE.match((TEMPLATES / name).read_text(encoding="utf-8")))
        fragment = name.rsplit("/", 1)[-1].startswith("_")
        if full == fragment:
            wrong.append(f"{name}: {'a fragment extends' if fragment else 'a page lacks'} base")
    assert wrong == []


def named_in_code() -> dict[str, str]:
    """Every ``*.html`` string literal of the application code, with where it is."""
    found = {}
    for path in sorted(APP.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and value.endswith(".html"):
                found[value] = f"{path.relative_to(APP.parent)}:{node.lineno}"
    return found


def named_in_templates() -> dict[str, str]:
    """Every template name an include, import, from or extends gives, with where it is."""
    found = {}
    for name in templates():
        for match in JINJA_NAME.finditer((TEMPLATES / name).read_text(encoding="utf-8")):
            found[match.group(1)] = name
    return found


def test_every_named_template_exists_and_every_template_is_named() -> None:
    named = {**named_in_code(), **named_in_templates()}
    existing = set(templates())
    assert {n: where for n, where in named.items() if n not in existing} == {}
    assert sorted(existing - set(named)) == []


def test_the_rule_sees_a_misplaced_template() -> None:
    assert layout_problems(["base.html", "tasks/queues/page.html", "tasks/_macros.html"]) == []
    assert layout_problems(["tasks/dashboard.html", "tasks/alerts/list.html"]) == [
        "tasks/dashboard.html: an operator page belongs in tasks/<screen>/",
        "tasks/alerts/: no page.html",
    ]
    assert layout_problems(["admin/_rows.html", "x/a.html", "tasks/a/b/c.html", "y.html"]) == [
        "admin/_rows.html: a screen with a fragment is a folder <area>/<screen>/",
        "x/a.html: not in one of ['admin', 'auth', 'errors', 'tasks']",
        "tasks/a/b/c.html: screens are one folder deep",
        "y.html: only base.html sits at the top",
    ]
