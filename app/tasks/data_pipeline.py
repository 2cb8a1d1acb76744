"""Data-pipeline tasks named by the predefined schedules (``data_pipeline.tasks.*``)."""

from __future__ import annotations

from typing import Any

from app.services import pipeline_checks
from app.tracking import tracked


@tracked("processing", name="data_pipeline.tasks.run_full_pipeline")
def run_full_pipeline(source: str = "idmc") -> dict[str, Any]:
    """Run the pipeline for one source (for now: report what it would cover)."""
    return pipeline_checks.pipeline_summary(source)


@tracked("processing", name="data_pipeline.tasks.validate_data")
def validate_data() -> dict[str, Any]:
    """Weekly data validation: entity counts and executions stuck in started."""
    return pipeline_checks.validate_data()
