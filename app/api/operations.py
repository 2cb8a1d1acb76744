"""Operator views: live workers and their control, dead letters, queues."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import (
    MAX_ID,
    MAX_PAGE_SIZE,
    VIEWER_RULE,
    BulkIntIdsSchema,
    BulkResultSchema,
    QueryInt,
    UTCDateTime,
    answer_each,
    existing_id,
)
from app.api.stats import QueueSchema
from app.extensions import db, redis_client
from app.models import DeadLetter
from app.monitoring.queues import queue_stats
from app.paging import keyset_page, url_cursor
from app.services import dead_letters as dead_letter_service
from app.services import workers
from app.services.dead_letters import letters_query
from app.tracking.heartbeats import live_workers

workers_blp = Blueprint(
    "api_workers", __name__, url_prefix="/tasks/api/workers", description="Workers"
)
letters_blp = Blueprint(
    "api_dead_letters", __name__, url_prefix="/tasks/api/dead-letters", description="Dead letters"
)
queues_blp = Blueprint("api_queues", __name__, url_prefix="/tasks/api/queues", description="Queues")


class ActiveTaskSchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()


class WorkerSchema(ma.Schema):
    hostname = ma.fields.String()
    host = ma.fields.String()
    pid = ma.fields.Integer()
    queues = ma.fields.List(ma.fields.String())
    concurrency = ma.fields.Integer(allow_none=True)
    active = ma.fields.Integer()
    active_tasks = ma.fields.List(ma.fields.Nested(ActiveTaskSchema))
    last_seen = UTCDateTime(metadata={"description": "the worker's latest heartbeat"})


class WorkerListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(WorkerSchema))


class PoolSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    n = ma.fields.Integer(load_default=1, strict=True, validate=ma.validate.Range(1, 64))


class ConsumerSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    queue = ma.fields.String(required=True)


class ControlResultSchema(ma.Schema):
    worker = ma.fields.String()
    action = ma.fields.String()
    replies = ma.fields.List(ma.fields.Raw())


class DeadLetterArgsSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    state = ma.fields.String(
        load_default="open", validate=ma.validate.OneOf(["open", "requeued", "discarded", "all"])
    )
    task_name = ma.fields.String(validate=ma.validate.Length(1, 255))
    before_id = QueryInt(MAX_ID)
    page_size = QueryInt(MAX_PAGE_SIZE, load_default=50)


class DeadLetterSchema(ma.Schema):
    id = ma.fields.Integer()
    task_id = ma.fields.String()
    task_name = ma.fields.String()
    queue = ma.fields.String(allow_none=True)
    args = ma.fields.Raw(allow_none=True, attribute="shown_args")
    kwargs = ma.fields.Raw(allow_none=True, attribute="shown_kwargs")
    error_message = ma.fields.String(allow_none=True)
    created_at = UTCDateTime()
    requeued_at = UTCDateTime(allow_none=True)
    requeued_task_id = ma.fields.String(allow_none=True)
    discarded_at = UTCDateTime(allow_none=True)


class DeadLetterPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DeadLetterSchema))
    next_before_id = ma.fields.Integer(allow_none=True)


class RequeuedSchema(ma.Schema):
    id = ma.fields.Integer()
    new_task_id = ma.fields.String(allow_none=True)


class QueueListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(QueueSchema))


def blueprints() -> list[Blueprint]:
    return [workers_blp, letters_blp, queues_blp]


@workers_blp.route("/")
class Workers(MethodView):
    decorators = VIEWER_RULE

    @workers_blp.response(200, WorkerListSchema)
    def get(self) -> dict[str, Any]:
        """Live workers from their heartbeats: queues, concurrency, active tasks."""
        return {"items": sorted(live_workers(redis_client()), key=lambda w: w["hostname"])}


def _control(name: str, action: str, **arguments: Any) -> dict[str, Any]:
    """Send one control command to a live worker (app.services.workers); audited."""
    try:
        result = workers.control(redis_client(), name, action, **arguments)
    except workers.ControlFailed:
        db.session.commit()  # keep the audit entry of the failed attempt
        raise
    db.session.commit()
    return result.as_dict()


@workers_blp.route("/<string:name>/shutdown/", methods=["POST"])
@VIEWER_RULE[0]
@workers_blp.response(202, ControlResultSchema)
def shutdown(name: str) -> dict[str, Any]:
    """Ask a worker to stop after its running tasks (warm shutdown)."""
    return _control(name, "shutdown")


@workers_blp.route("/<string:name>/pool/grow/", methods=["POST"])
@VIEWER_RULE[0]
@workers_blp.arguments(PoolSchema)
@workers_blp.response(202, ControlResultSchema)
def pool_grow(body: dict[str, Any], name: str) -> dict[str, Any]:
    """Add ``n`` pool processes to a worker."""
    return _control(name, "pool_grow", n=body["n"])


@workers_blp.route("/<string:name>/pool/shrink/", methods=["POST"])
@VIEWER_RULE[0]
@workers_blp.arguments(PoolSchema)
@workers_blp.response(202, ControlResultSchema)
def pool_shrink(body: dict[str, Any], name: str) -> dict[str, Any]:
    """Remove ``n`` pool processes from a worker."""
    return _control(name, "pool_shrink", n=body["n"])


@workers_blp.route("/<string:name>/consumers/add/", methods=["POST"])
@VIEWER_RULE[0]
@workers_blp.arguments(ConsumerSchema)
@workers_blp.response(202, ControlResultSchema)
def add_consumer(body: dict[str, Any], name: str) -> dict[str, Any]:
    """Make a worker consume one more queue."""
    return _control(name, "add_consumer", queue=body["queue"])


@workers_blp.route("/<string:name>/consumers/cancel/", methods=["POST"])
@VIEWER_RULE[0]
@workers_blp.arguments(ConsumerSchema)
@workers_blp.response(202, ControlResultSchema)
def cancel_consumer(body: dict[str, Any], name: str) -> dict[str, Any]:
    """Make a worker stop consuming a queue."""
    return _control(name, "cancel_consumer", queue=body["queue"])


@letters_blp.route("/")
class DeadLetters(MethodView):
    decorators = VIEWER_RULE

    @letters_blp.arguments(DeadLetterArgsSchema, location="query")
    @letters_blp.response(200, DeadLetterPageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Dead letters, newest first (keyset on id through ``before_id``)."""
        query = letters_query(args["state"], args.get("task_name"))
        cursor = url_cursor(args.get("before_id"), None)
        page = keyset_page(query, [DeadLetter.id], args["page_size"], cursor)
        return {"items": page.rows, "next_before_id": page.next.value if page.next else None}


def _requeue(letter_id: int) -> str | None:
    new_id = dead_letter_service.requeue(existing_id(letter_id))
    db.session.commit()
    return new_id


def _discard(letter_id: int) -> None:
    dead_letter_service.discard(existing_id(letter_id))
    db.session.commit()


@letters_blp.route("/<int:letter_id>/requeue/", methods=["POST"])
@VIEWER_RULE[0]
@letters_blp.response(202, RequeuedSchema)
def requeue(letter_id: int) -> dict[str, Any]:
    """Send a dead letter again as a new execution linked to the original."""
    return {"id": letter_id, "new_task_id": _requeue(letter_id)}


@letters_blp.route("/<int:letter_id>/discard/", methods=["POST"])
@VIEWER_RULE[0]
@letters_blp.response(200, RequeuedSchema)
def discard(letter_id: int) -> dict[str, Any]:
    """Drop a dead letter (it stays listed as discarded)."""
    _discard(letter_id)
    return {"id": letter_id, "new_task_id": None}


@letters_blp.route("/bulk/requeue/", methods=["POST"])
@VIEWER_RULE[0]
@letters_blp.arguments(BulkIntIdsSchema)
@letters_blp.response(200, BulkResultSchema)
def bulk_requeue(body: dict[str, Any]) -> dict[str, Any]:
    """Requeue several dead letters, answering per id."""
    return answer_each(body["ids"], _requeue, 200, "ok")


@letters_blp.route("/bulk/discard/", methods=["POST"])
@VIEWER_RULE[0]
@letters_blp.arguments(BulkIntIdsSchema)
@letters_blp.response(200, BulkResultSchema)
def bulk_discard(body: dict[str, Any]) -> dict[str, Any]:
    """Discard several dead letters, answering per id."""
    return answer_each(body["ids"], _discard, 200, "ok")


@queues_blp.route("/")
class Queues(MethodView):
    decorators = VIEWER_RULE

    @queues_blp.response(200, QueueListSchema)
    def get(self) -> dict[str, Any]:
        """Each queue's depth (all priority lists) and the age of its oldest message."""
        return {"items": queue_stats(redis_client())}
