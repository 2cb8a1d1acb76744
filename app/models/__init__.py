"""The models; importing this package registers every table on the metadata."""

from app.models.api_token import ApiToken
from app.models.audit import AuditEntry
from app.models.data import CountryMonthTotal, DataPoint, RawPayload
from app.models.pipeline import Source, Variable
from app.models.queue_snapshot import QueueSnapshot
from app.models.run import PipelineRun, RunStatus, RunStep, StepOrigin
from app.models.schedule import (
    IntervalUnit,
    MisfirePolicy,
    OverlapPolicy,
    RunKind,
    ScheduledTask,
    ScheduleKind,
    ScheduleRun,
)
from app.models.statistics import ExecutionHourly
from app.models.task_execution import FINAL_STATUSES, TaskExecution, TaskStatus
from app.models.task_type import TaskType
from app.models.tracking import Alert, DeadLetter
from app.models.user import Role, User
from app.models.watch import ScheduleWatch

__all__ = [
    "FINAL_STATUSES",
    "Alert",
    "ApiToken",
    "AuditEntry",
    "CountryMonthTotal",
    "DataPoint",
    "DeadLetter",
    "ExecutionHourly",
    "IntervalUnit",
    "MisfirePolicy",
    "OverlapPolicy",
    "PipelineRun",
    "QueueSnapshot",
    "RawPayload",
    "Role",
    "RunKind",
    "RunStatus",
    "RunStep",
    "ScheduleKind",
    "ScheduleRun",
    "ScheduleWatch",
    "ScheduledTask",
    "Source",
    "StepOrigin",
    "TaskExecution",
    "TaskStatus",
    "TaskType",
    "User",
    "Variable",
]
