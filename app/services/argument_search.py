"""Search executions by the values of their arguments (positional ``args`` and ``kwargs``).

The syntax, shared by the executions page and the API (``arg``):

- ``name=value`` matches an execution one of whose arguments has a key ``name`` equal to
  ``value``, or holding a list that contains it: a keyword argument, or a key of a dict passed as
  an argument, at any depth (``country=AFG`` finds ``{"filters": {"country": "AFG"}}``).
- ``value`` alone matches the value anywhere: a positional argument, a keyword argument's value,
  or inside their lists and dicts, at any depth.
- Several terms, separated by spaces, must all match; quote a value with spaces
  (``country="South Sudan"``). Values are exact and case-sensitive.
- A value written as a number (``3``, ``-2.5``) matches that number and the same text ("3"); so
  do ``true``, ``false`` and ``null``. Numbers beyond 2^53 are matched as text only.

Redacted values (keys named like secrets, see app.tracking.capture) are stored as a marker, not
as what the task received: searching them is refused rather than answered with nothing.

On PostgreSQL each term is a jsonpath ``@?`` test on ``args::jsonb`` and ``kwargs::jsonb``,
which the GIN indexes on those expressions answer (``jsonb_ops``: it indexes keys and values
apart, so ``$.**`` paths can use it, where ``jsonb_path_ops`` could not). SQLite walks the
arguments with ``json_tree``: the same answers, read row by row.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, and_, bindparam, cast, exists, or_, select, true
from sqlalchemy.dialects.postgresql import JSONB, JSONPATH
from sqlalchemy.sql import func

from app.errors import InvalidInput
from app.models import TaskExecution
from app.tracking.capture import REDACTED, SECRET_KEY_PATTERN

MAX_TEXT = 500  # the whole search, as typed
MAX_TERMS = 8
MAX_PART = 200  # one name or value
MAX_EXACT_NUMBER = 2**53  # beyond, a JSON number is not held exactly by every reader
NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
HELP = _l(
    "name=value finds a keyword argument (or a key of a dict argument, at any depth) equal to "
    "the value or listing it; a value alone finds it anywhere in the arguments. Separate terms "
    'with spaces (all must match), quote values with spaces: country="South Sudan". '
    'Exact and case-sensitive; 3 also finds "3". Redacted arguments cannot be searched.'
)


class BadArgumentSearch(InvalidInput):
    """A search the parser refuses; its message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message, {"arg": [message]})


@dataclass(frozen=True)
class Term:
    """One term: a key (None: anywhere) and the JSON scalars it accepts."""

    key: str | None
    values: tuple[Any, ...]  # str, int, float, bool or None (JSON null)


def _scalars(text: str) -> tuple[Any, ...]:
    """The JSON scalars a typed value stands for: always the text, plus a number or a
    constant when it is written as one."""
    if text in ("true", "false", "null"):
        return (text, json.loads(text))
    if NUMBER.fullmatch(text):
        number: Any = float(text) if any(c in text for c in ".eE") else int(text)
        if math.isfinite(number) and abs(number) <= MAX_EXACT_NUMBER:
            if isinstance(number, float) and number.is_integer():
                number = int(number)
            return (text, number)
    return (text,)


def _term(word: str) -> Term:
    name, sep, value = word.partition("=")
    key: str | None = name
    if not sep:
        key, value = None, word
    elif not key:
        raise BadArgumentSearch(str(_l("Write a name before the = sign (name=value).")))
    if len(key or "") > MAX_PART or len(value) > MAX_PART:
        raise BadArgumentSearch(
            str(_l("A name or value has at most %(count)s characters.", count=MAX_PART))
        )
    if key is not None and SECRET_KEY_PATTERN.search(key):
        raise BadArgumentSearch(
            str(_l("%(name)s is stored redacted, so it cannot be searched.", name=key))
        )
    if value == REDACTED:
        raise BadArgumentSearch(str(_l("Redacted values cannot be searched.")))
    return Term(key, _scalars(value))


def _split(text: str) -> list[str]:
    """Words separated by spaces, double or single quotes grouping; backslashes are kept as
    typed (a Windows path is a value like any other)."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    lexer.escape = ""
    return list(lexer)


def parse(texts: str | Iterable[str] | None) -> list[Term]:
    """The terms of one typed search (or of several, all to match); raises
    :class:`BadArgumentSearch` with a message an operator can act on."""
    if texts is None:
        return []
    texts = [texts] if isinstance(texts, str) else list(texts)
    if sum(len(t) for t in texts) > MAX_TEXT:
        raise BadArgumentSearch(
            str(_l("An argument search has at most %(count)s characters.", count=MAX_TEXT))
        )
    words: list[str] = []
    for text in texts:
        if CONTROL.search(text):
            raise BadArgumentSearch(str(_l("Control characters are not allowed.")))
        try:
            words += _split(text)
        except ValueError:
            raise BadArgumentSearch(str(_l("A quote is not closed."))) from None
    if len(words) > MAX_TERMS:
        raise BadArgumentSearch(
            str(_l("An argument search has at most %(count)s terms.", count=MAX_TERMS))
        )
    return [_term(word) for word in words]


def _jsonpath(term: Term) -> str:
    tests = " || ".join(f"@ == {json.dumps(v, ensure_ascii=False)}" for v in term.values)
    path = "$.**" if term.key is None else f"$.**.{json.dumps(term.key, ensure_ascii=False)}"
    return f"{path} ? ({tests})"


Columns = tuple[Any, Any]  # the args and kwargs columns (of the table or of a subquery)


def _pg_condition(term: Term, columns: Columns) -> ColumnElement[bool]:
    path = bindparam(None, _jsonpath(term), type_=JSONPATH)
    return or_(*(cast(column, JSONB).op("@?")(path) for column in columns))


def _atom_matches(node: Any, values: tuple[Any, ...]) -> ColumnElement[bool]:
    """``node`` (a json_tree or json_each row) is a scalar equal to one of ``values``."""
    kinds = []
    for value in values:
        if value is None:
            kinds.append(node.c.type == "null")
        elif isinstance(value, bool):
            kinds.append(node.c.type == ("true" if value else "false"))
        elif isinstance(value, str):
            kinds.append(and_(node.c.type == "text", node.c.atom == value))
        else:
            kinds.append(and_(node.c.type.in_(("integer", "real")), node.c.atom == value))
    return or_(*kinds)


def _sqlite_condition(term: Term, columns: Columns) -> ColumnElement[bool]:
    checks = []
    for column in columns:
        node = func.json_tree(column).table_valued("key", "atom", "type", "value").alias()
        if term.key is None:
            anywhere = select(1).select_from(node).where(_atom_matches(node, term.values))
            checks.append(exists(anywhere))
            continue
        # Lax like jsonpath: a key holding a list matches when one of its items does.
        item = func.json_each(node.c.value).table_valued("atom", "type").alias()
        listed = exists(select(1).select_from(item).where(_atom_matches(item, term.values)))
        checks.append(
            exists(
                select(1)
                .select_from(node)
                .where(
                    node.c.key == term.key,
                    func.typeof(node.c.key) == "text",
                    or_(_atom_matches(node, term.values), and_(node.c.type == "array", listed)),
                )
            )
        )
    return or_(*checks)


def condition(
    terms: list[Term], dialect: str, columns: Columns | None = None
) -> ColumnElement[bool]:
    """The WHERE clause matching every term, for the ``dialect`` in use, on the executions'
    ``args`` and ``kwargs`` (or on ``columns``, the same two of a subquery)."""
    columns = columns or (TaskExecution.args, TaskExecution.kwargs)
    build = _pg_condition if dialect == "postgresql" else _sqlite_condition
    return and_(true(), *(build(term, columns) for term in terms))
