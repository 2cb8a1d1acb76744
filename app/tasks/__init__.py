"""The task catalogue. Task names are explicit so the spec's routes (``data_pipeline.tasks.*``,
``task_monitoring.tasks.*``, ``location.tasks.*``, ``maintenance.tasks.*``) apply whatever module
defines them."""

from app.tasks import data_pipeline, location, maintenance, task_monitoring

__all__ = ["data_pipeline", "location", "maintenance", "task_monitoring"]
