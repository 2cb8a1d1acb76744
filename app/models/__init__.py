"""The models; importing this package registers every table on the metadata."""

from app.models.pipeline import Source, Variable
from app.models.schedule import (
    IntervalUnit,
    MisfirePolicy,
    RunKind,
    ScheduledTask,
    ScheduleKind,
    ScheduleRun,
)
from app.models.task_execution import FINAL_STATUSES, TaskExecution, TaskStatus
from app.models.task_type import TaskType

__all__ = [
    "FINAL_STATUSES",
    "IntervalUnit",
    "MisfirePolicy",
    "RunKind",
    "ScheduleKind",
    "ScheduleRun",
    "ScheduledTask",
    "Source",
    "TaskExecution",
    "TaskStatus",
    "TaskType",
    "Variable",
]
