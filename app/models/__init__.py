"""The models; importing this package registers every table on the metadata."""

from app.models.pipeline import Source, Variable
from app.models.task_execution import FINAL_STATUSES, TaskExecution, TaskStatus
from app.models.task_type import TaskType
from app.models.tracking import Alert, DeadLetter

__all__ = [
    "FINAL_STATUSES",
    "Alert",
    "DeadLetter",
    "Source",
    "TaskExecution",
    "TaskStatus",
    "TaskType",
    "Variable",
]
