"""The task catalogue. Task names are explicit so the spec's routes (``data_pipeline.tasks.*``,
``task_monitoring.tasks.*``, ``location.tasks.*``) apply whatever module defines them."""

from app.tasks import data_pipeline, task_monitoring

__all__ = ["data_pipeline", "task_monitoring"]
