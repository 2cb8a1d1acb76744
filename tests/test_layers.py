"""The layering rule of the README's architecture section, checked over the import graph so it
cannot rot: the engine packages own their data and write paths and import nothing above them;
``services`` (the audited operator use cases) may import the engine, never the pages, the API
or the command line; those entry points sit on top and may import anything below."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"

ENGINE = {"tracking", "scheduler", "monitoring", "pipeline", "runs", "watch", "location", "models"}
SERVICES = {"services"}
# Entry points: what a request, a command or a Celery task calls first.
ENTRY = {"web", "api", "admin", "auth", "tasks", "cli", "local_run"}
RANK = {"engine": 0, "services": 1, "entry": 2}


def layer(module: str) -> str | None:
    """The layer of ``app.<...>`` module ``module``; None for shared infrastructure (the app
    factory's extensions, config, errors, the database and Redis helpers)."""
    parts = module.split(".")
    if parts[0] != "app" or len(parts) < 2:
        return None
    if parts[-1] == "cli":  # each package's commands are an entry point of the command line
        return "entry"
    top = parts[1]
    if top in ENGINE:
        return "engine"
    if top in SERVICES:
        return "services"
    if top in ENTRY:
        return "entry"
    return None


def imports_of(path: Path) -> set[str]:
    """Every ``app.*`` module ``path`` imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("app."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "app":
                found.update(f"app.{alias.name}" for alias in node.names)
            elif node.module.startswith("app."):
                found.add(node.module)
    return found


def module_name(path: Path) -> str:
    relative = path.relative_to(APP.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_no_package_imports_one_above_it() -> None:
    upward = []
    for path in sorted(APP.rglob("*.py")):
        source = module_name(path)
        own = layer(source)
        if own is None:
            continue
        for target in sorted(imports_of(path)):
            if target == f"{source}.cli":
                continue  # a package's init_app registers its own commands
            other = layer(target)
            if other is not None and RANK[other] > RANK[own]:
                upward.append(f"{source} ({own}) imports {target} ({other})")
    assert upward == []


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from app.services.audit import record_audit\n")
    assert imports_of(probe) == {"app.services.audit"}
    assert layer("app.tracking.apply") == "engine" and layer("app.services.audit") == "services"
    assert layer("app.scheduler.cli") == "entry" and layer("app.extensions") is None
