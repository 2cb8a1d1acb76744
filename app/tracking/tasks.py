"""Tasks of the tracking subsystem itself."""

from __future__ import annotations

from typing import Any

from app.tracking.policies import tracked


@tracked("monitoring", name="task_monitoring.tasks.notify_alert")
def notify_alert(alert_id: int) -> dict[str, Any]:
    """Send an alert to the configured webhook and/or email address."""
    from app.tracking.alerts import notify

    return notify(alert_id)
