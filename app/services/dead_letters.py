"""Dead letters as operators see them: filtered lists, and requeue/discard with an audit entry.

Shared by the JSON API and the pages. Like every service these only add and mutate; the caller
commits (one commit per letter in bulk actions, so one failure never undoes the others).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import Select, func, or_, select

from app.bounds import MAX_BIGINT as MAX_ID
from app.errors import DomainError, NotFound
from app.extensions import db
from app.models import DeadLetter
from app.services.audit import record_audit
from app.tracking import deadletters

STATES = ("open", "requeued", "discarded", "all")


def letters_query(
    state: str = "open",
    task_name: str | None = None,
    search: str | None = None,
    ids: Iterable[int] | None = None,
) -> Select[DeadLetter]:
    """Dead letters newest first: by state, exact task name, and a substring of the error or the
    task name (the store is capped, DEAD_LETTER_MAX, so a substring scan stays cheap)."""
    query = select(DeadLetter).order_by(DeadLetter.id.desc())
    if state == "open":
        query = query.where(DeadLetter.requeued_at.is_(None), DeadLetter.discarded_at.is_(None))
    elif state == "requeued":
        query = query.where(DeadLetter.requeued_at.is_not(None))
    elif state == "discarded":
        query = query.where(DeadLetter.discarded_at.is_not(None))
    if task_name:
        query = query.where(DeadLetter.task_name == task_name)
    if search:
        query = query.where(
            or_(
                DeadLetter.error_message.icontains(search, autoescape=True),
                DeadLetter.task_name.icontains(search, autoescape=True),
            )
        )
    if ids is not None:
        query = query.where(DeadLetter.id.in_(list(ids)))
    return query


def count_up_to(query: Select[DeadLetter], limit: int) -> int:
    """How many rows ``query`` matches, counting no further than ``limit``."""
    bounded = query.with_only_columns(DeadLetter.id).order_by(None).limit(limit).subquery()
    return db.session.scalar(select(func.count()).select_from(bounded)) or 0


def task_names() -> list[str]:
    """The distinct task names in the store, for the filter."""
    return list(db.session.scalars(select(DeadLetter.task_name).distinct().order_by("task_name")))


def _checked(letter_id: int) -> int:
    if not 0 < letter_id <= MAX_ID:
        raise NotFound(_("Dead letter %(id)s does not exist.", id=letter_id))
    return letter_id


def requeue(letter_id: int) -> str:
    """Send a dead letter again as a new execution linked to the original; audited."""
    new_id = deadletters.requeue(_checked(letter_id))
    record_audit("dead_letter.requeue", "dead_letter", letter_id, details={"new_task_id": new_id})
    return new_id


def discard(letter_id: int) -> None:
    """Drop a dead letter (it stays listed as discarded); audited."""
    deadletters.discard(_checked(letter_id))
    record_audit("dead_letter.discard", "dead_letter", letter_id)


@dataclass(frozen=True)
class Outcome:
    """What a bulk action did to one dead letter."""

    id: int
    ok: bool
    code: str  # "ok", or the DomainError's code: "not_found", "conflict"
    message: str | None = None
    new_task_id: str | None = None


def apply_each(ids: Iterable[int], action: Callable[[int], str | None]) -> Iterator[Outcome]:
    """Apply ``action`` to each id once, committing each success and rolling back each refusal."""
    for letter_id in dict.fromkeys(ids):
        try:
            new_id = action(letter_id)
        except DomainError as error:
            db.session.rollback()
            yield Outcome(letter_id, False, error.code, error.message)
        else:
            db.session.commit()
            yield Outcome(letter_id, True, "ok", new_task_id=new_id)


def open_ids_in_batches(
    query: Select[DeadLetter], limit: int, batch_size: int = 100
) -> Iterator[list[int]]:
    """The ids of the open letters ``query`` matches, newest first, ``batch_size`` at a time and
    at most ``limit`` in all (keyset on id, so letters handled meanwhile are simply skipped)."""
    query = query.where(DeadLetter.requeued_at.is_(None), DeadLetter.discarded_at.is_(None))
    ids_query = query.with_only_columns(DeadLetter.id).order_by(DeadLetter.id.desc())
    remaining, last_id = limit, None
    while remaining > 0:
        page = ids_query if last_id is None else ids_query.where(DeadLetter.id < last_id)
        batch = list(db.session.scalars(page.limit(min(batch_size, remaining))))
        if not batch:
            return
        yield batch
        remaining -= len(batch)
        last_id = batch[-1]
