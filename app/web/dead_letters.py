"""The dead-letter morgue (Sidekiq's Dead page is the model): filter, look inside, retry now or
discard, one at a time, a selection, or everything matching the filter (in bounded batches)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from werkzeug.wrappers import Response

from app.auth.access import may_operate, requires
from app.errors import DomainError
from app.extensions import db
from app.models import DeadLetter, Role
from app.paging import keyset_page, url_cursor
from app.services import dead_letters as letters
from app.web import bp, links  # noqa: F401  (links registers execution_url)
from app.web.fragments import is_htmx, page_or_fragment
from app.web.inputs import back, choice_arg, form_ids, get_or_404, id_arg, ids_in, text_arg

PAGE_SIZE = 50
MAX_ALL = 1000  # letters handled by one "all matching" request; the rest by running it again
MAX_LISTED_FAILURES = 10
ACTIONS = {"requeue": letters.requeue, "discard": letters.discard}


def _filters(source: Any) -> dict[str, str]:
    """The filter of a request (query string) or of a form posting it back."""
    return {
        "task": source.get("task", "").replace("\x00", "").strip()[:255],
        "q": source.get("q", "").replace("\x00", "").strip()[:200],
    }


@bp.get("/dead-letters/")
@requires(Role.VIEWER)
def dead_letters() -> Response:
    """Dead letters newest first, by state, task name and text; HTMX gets the table only."""
    only = ids_in(request.args.getlist("only"))[:PAGE_SIZE]
    state = "all" if only else choice_arg("state", letters.STATES, "open")
    filters = {"state": state, "task": text_arg("task")[:255], "q": text_arg("q")}
    before, after = id_arg("before"), id_arg("after")
    query = letters.letters_query(state, filters["task"], filters["q"], only or None)
    page = keyset_page(query, [DeadLetter.id], PAGE_SIZE, url_cursor(before, after))
    query_args: dict[str, Any] = {
        k: v for k, v in filters.items() if v and not (k == "state" and v == "open")
    }
    if only:
        query_args["only"] = only
    return page_or_fragment(
        "tasks/dead_letters/page.html",
        "tasks/dead_letters/_table.html",
        listing=page,
        filters=filters,
        only=only,
        query_args=query_args,
        task_names=[] if is_htmx() else letters.task_names(),  # the filter is not polled
        live=before is None and after is None,
        checked=set(ids_in(request.args.getlist("id"))),
        can_act=may_operate(),
    )


@bp.get("/dead-letters/<int:letter_id>/")
@requires(Role.VIEWER)
def dead_letter_detail(letter_id: int) -> str:
    """One dead letter in full: args, kwargs, headers, error, and what became of it."""
    letter = get_or_404(DeadLetter, letter_id)
    return render_template("tasks/dead_letters/detail.html", letter=letter)


def _flash_outcomes(action: str, outcomes: Iterable[letters.Outcome]) -> list[int]:
    """One summary line for the successes, one listing the refusals; returns the ids handled."""
    done, failed, seen = 0, [], []
    for outcome in outcomes:
        seen.append(outcome.id)
        if outcome.ok:
            done += 1
        else:
            failed.append(outcome.message or outcome.code)
    if action == "requeue":
        message = ngettext("%(num)d dead letter requeued.", "%(num)d dead letters requeued.", done)
    else:
        message = ngettext(
            "%(num)d dead letter discarded.", "%(num)d dead letters discarded.", done
        )
    flash(message, "success" if done else "info")
    if failed:
        shown = " ".join(failed[:MAX_LISTED_FAILURES])
        more = len(failed) - MAX_LISTED_FAILURES
        if more > 0:
            shown += " " + ngettext("(and %(num)d more)", "(and %(num)d more)", more)
        flash(shown, "error")
    return seen


def _one(letter_id: int, action: str) -> Response:
    get_or_404(DeadLetter, letter_id)
    target = back("web.dead_letter_detail", letter_id=letter_id)
    try:
        new_task_id = ACTIONS[action](letter_id)
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(target, 303)
    db.session.commit()
    if action == "requeue":
        flash(
            _(
                "Dead letter #%(id)s requeued as task %(task_id)s.",
                id=letter_id,
                task_id=new_task_id,
            ),
            "success",
        )
    else:
        flash(_("Dead letter #%(id)s discarded.", id=letter_id), "success")
    return redirect(target, 303)


@bp.post("/dead-letters/<int:letter_id>/requeue/")
@requires(Role.OPERATOR)
def requeue_dead_letter(letter_id: int) -> Response:
    """Retry now: send the exact message again as a new execution linked to the original."""
    return _one(letter_id, "requeue")


@bp.post("/dead-letters/<int:letter_id>/discard/")
@requires(Role.OPERATOR)
def discard_dead_letter(letter_id: int) -> Response:
    """Discard a dead letter (it stays listed as discarded)."""
    return _one(letter_id, "discard")


def _action() -> str | None:
    action = request.form.get("action", "")
    if action not in ACTIONS:
        flash(_("Choose to requeue or to discard."), "error")
        return None
    return action


@bp.post("/dead-letters/selected/")
@requires(Role.OPERATOR)
def dead_letters_selected() -> Response:
    """Requeue or discard the selected dead letters; the page then shows what became of each."""
    action, ids = _action(), form_ids("id")[:PAGE_SIZE]
    if action is None or not ids:
        if action is not None:
            flash(_("Select at least one dead letter."), "error")
        return redirect(back("web.dead_letters"), 303)
    handled = _flash_outcomes(action, letters.apply_each(ids, ACTIONS[action]))
    return redirect(url_for("web.dead_letters", only=handled), 303)


@bp.get("/dead-letters/all/")
@requires(Role.OPERATOR)
def confirm_dead_letters_all() -> str:
    """Ask before acting on every open dead letter matching the filter; says how many."""
    action = choice_arg("action", tuple(ACTIONS), "requeue")
    filters = _filters(request.args)
    query = letters.letters_query("open", filters["task"], filters["q"])
    count = letters.count_up_to(query, MAX_ALL + 1)
    return render_template(
        "tasks/dead_letters/confirm_all.html",
        action=action,
        filters=filters,
        count=min(count, MAX_ALL),
        more=count > MAX_ALL,
        limit=MAX_ALL,
    )


@bp.post("/dead-letters/all/")
@requires(Role.OPERATOR)
def dead_letters_all() -> Response:
    """Requeue or discard every open dead letter matching the filter, up to MAX_ALL at once."""
    action, filters = _action(), _filters(request.form)
    kept: dict[str, Any] = {k: v for k, v in filters.items() if v}
    listing = url_for("web.dead_letters", **kept)
    if action is None:
        return redirect(listing, 303)
    query = letters.letters_query("open", filters["task"], filters["q"])
    outcomes: list[letters.Outcome] = []
    for batch in letters.open_ids_in_batches(query, MAX_ALL):
        outcomes.extend(letters.apply_each(batch, ACTIONS[action]))
    _flash_outcomes(action, outcomes)
    if letters.count_up_to(query, 1):
        flash(
            _("More dead letters match this filter; run the action again for the next ones."),
            "info",
        )
    return redirect(listing, 303)
