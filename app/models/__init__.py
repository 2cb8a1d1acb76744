"""The models; importing this package registers every table on the metadata."""

from app.models.pipeline import Source, Variable
from app.models.task_execution import FINAL_STATUSES, TaskExecution, TaskStatus
from app.models.task_type import TaskType

__all__ = [
    "FINAL_STATUSES",
    "Source",
    "TaskExecution",
    "TaskStatus",
    "TaskType",
    "Variable",
]
