"""The operator's input on the management pages (query filters, ids, the way back) and the
answers to their forms (saved or refused, then back to a page: POST-redirect-GET).

Bad values answer a clear 400 or 404 page, never a 500 (an id beyond any key would overflow
the database driver, so it is a 404 before any query).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn, TypeVar

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from app.auth.redirects import safe_next
from app.auth.responses import error_response
from app.bounds import key_fits, parse_id
from app.errors import DomainError
from app.extensions import db

MAX_TEXT = 200
T = TypeVar("T")
# A page as a view returns it: the body, or the body and its status (and headers, e.g. no-store
# on the one page that shows a new secret).
Page = str | tuple[str, int] | tuple[str, int, dict[str, str]]


def bad_request(message: str) -> NoReturn:
    """Stop with a 400 page saying what was wrong."""
    abort(error_response(400, "bad_request", message))


def not_found() -> NoReturn:
    """Stop with a 404 page."""
    abort(error_response(404, "not_found", _("Not found.")))


def choice_arg(name: str, choices: Iterable[str], default: str = "") -> str:
    """A query value that must be one of ``choices`` (or empty for ``default``)."""
    value = request.args.get(name, "").strip()
    if not value:
        return default
    if value not in choices:
        bad_request(_("%(value)s is not a valid value for %(name)s.", value=value[:50], name=name))
    return value


def text_arg(name: str) -> str:
    """A free-text filter, trimmed; NUL characters (PostgreSQL refuses them) are dropped."""
    return request.args.get(name, "").replace("\x00", "").strip()[:MAX_TEXT]


def id_arg(name: str) -> int | None:
    """A keyset cursor: a positive id, or None when absent; anything else is a 400."""
    value = request.args.get(name, "")
    if not value:
        return None
    parsed = parse_id(value)
    if parsed is None:
        bad_request(_("The page cursor is not valid; start again from the first page."))
    return parsed


def ids_in(values: Iterable[str]) -> list[int]:
    """The values that are ids (see :func:`app.bounds.parse_id`); others are left out."""
    return [i for i in map(parse_id, values) if i is not None]


def form_ids(name: str = "id") -> list[int]:
    """The checked ids of a bulk form; values that cannot be ids are left out."""
    return ids_in(request.form.getlist(name))


def get_or_404(model: type[T], row_id: int) -> T:
    """The row ``row_id`` of ``model``, or a 404 page."""
    row = db.session.get(model, row_id) if key_fits(model, row_id) else None
    if row is None:
        not_found()
    return row


def posted_from() -> str | None:
    """The page a form was posted from (its ``next`` field), if it is one of ours."""
    target = safe_next(request.form.get("next"))
    return target if target and target.startswith("/tasks/") else None


def back(endpoint: str, **values: Any) -> str:
    """Where to return after a form: the page it was on, else ``endpoint``."""
    return posted_from() or url_for(endpoint, **values)


def saved(message: str, target: str) -> Response:
    """Commit, say so, and go to ``target`` (303: the browser follows with a GET)."""
    db.session.commit()
    flash(message, "success")
    return redirect(target, 303)


def refused(error: DomainError, target: str) -> Response:
    """Roll back, show the service's reason, and go to ``target``."""
    db.session.rollback()
    flash(error.message, "error")
    return redirect(target, 303)
