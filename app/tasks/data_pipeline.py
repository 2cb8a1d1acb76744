"""Data-pipeline tasks (``data_pipeline.tasks.*``): retrieve, process, aggregate, validate, and
the full pipeline that chains them per variable. Each is thin: ids in, a service call, a commit,
a small JSON result out."""

from __future__ import annotations

from typing import Any

from celery import chain
from flask_babel import gettext as _

from app.extensions import db
from app.pipeline import aggregation, processing, retrieval, sources, validation
from app.tracking import DataValidationError, create_task_execution, tracked


@tracked("retrieval", name="data_pipeline.tasks.retrieve_source", bind=True)
def retrieve_source(self: Any, source_id: int, variable_id: int) -> dict[str, Any]:
    """Fetch one variable of a source over HTTP and store the raw payload with its checksum."""
    payload = retrieval.retrieve(source_id, variable_id, task_id=self.request.id)
    db.session.commit()
    return retrieval.summary(payload)


@tracked("processing", name="data_pipeline.tasks.process_raw", bind=True)
def process_raw(self: Any, raw_id: int | dict[str, Any]) -> dict[str, Any]:
    """Validate and normalize a raw payload into data points; invalid records are listed.

    ``raw_id`` may also be the result of ``retrieve_source`` (the previous step of a chain).
    """
    raw = raw_id["raw_id"] if isinstance(raw_id, dict) else raw_id
    result = processing.process(int(raw))
    create_task_execution(
        self.request.id,
        "processing",
        source_id=result["source_id"],
        variable_id=result["variable_id"],
    )
    db.session.commit()
    return result


@tracked("aggregation", name="data_pipeline.tasks.aggregate_country_month")
def aggregate_country_month(variable_id: int | None = None) -> dict[str, Any]:
    """Rebuild the totals per country and month of one variable (or of all)."""
    result = aggregation.country_month_totals(variable_id)
    db.session.commit()
    return result


@tracked("processing", name="data_pipeline.tasks.validate_data")
def validate_data(source: str | None = None) -> dict[str, Any]:
    """The weekly validation: gaps, duplicates and outliers; the summary is the result."""
    return validation.validate(source)


def variable_chain(source_id: int, variable_id: int) -> Any:
    """retrieve -> process -> aggregate -> match locations for one variable, as a Celery chain.

    Each step is its own tracked execution; Celery links them by parent and root ids, and a
    step runs only when the previous one succeeded.
    """
    from app.tasks.location import match_locations

    return chain(
        retrieve_source.si(source_id, variable_id),
        process_raw.s(),
        aggregate_country_month.si(variable_id=variable_id),
        match_locations.si(variable_id=variable_id),
    )


@tracked("processing", name="data_pipeline.tasks.run_full_pipeline")
def run_full_pipeline(source: str = "idmc") -> dict[str, Any]:
    """Send one chain per active variable of ``source`` (IDMC is created on first use).

    Chains, not a chord: chords need Celery's result backend, which this engine does not use
    (results are recorded by tracking); the variables' chains are independent anyway.
    """
    found = sources.ensure_source(source)
    if found is None:
        raise DataValidationError(_("No source %(code)s.", code=source))
    if not found.is_active:
        return {"source": source, "active": False, "chains": []}
    variables = sources.active_variables(found)
    db.session.commit()  # the chains' workers must see a newly created source
    chains = []
    for variable in variables:
        sent = variable_chain(found.id, variable.id).apply_async()
        chains.append({"variable": variable.code, "last_task_id": sent.id})
    return {"source": source, "source_id": found.id, "active": True, "chains": chains}
