"""The spec's predefined schedules (7.1), created idempotently by ``setup-scheduled-tasks``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import ScheduledTask
from app.scheduler.service import create_schedule

PREDEFINED: list[dict[str, Any]] = [
    {
        "name": "idmc-daily-pipeline",
        "task": "data_pipeline.tasks.run_full_pipeline",
        "kind": "crontab",
        "crontab": "0 6 * * *",
        "kwargs": {"source": "idmc"},
        "descriptions": {
            "en": "Daily data pipeline for IDMC sources.",
            "fr": "Chaîne de traitement quotidienne des sources IDMC.",
            "es": "Canal de datos diario de las fuentes IDMC.",
            "ar": "سلسلة معالجة البيانات اليومية لمصادر IDMC.",
        },
    },
    {
        "name": "weekly-data-validation",
        "task": "data_pipeline.tasks.validate_data",
        "kind": "crontab",
        "crontab": "0 5 * * 1",
        "descriptions": {
            "en": "Weekly data validation checks.",
            "fr": "Contrôles hebdomadaires de validité des données.",
            "es": "Comprobaciones semanales de validación de datos.",
            "ar": "فحوص أسبوعية للتحقق من صحة البيانات.",
        },
    },
    {
        "name": "hourly-health-check",
        "task": "task_monitoring.tasks.health_check",
        "kind": "crontab",
        "crontab": "0 * * * *",
        "descriptions": {
            "en": "Hourly system health monitoring.",
            "fr": "Surveillance horaire de l'état du système.",
            "es": "Supervisión horaria de la salud del sistema.",
            "ar": "مراقبة سلامة النظام كل ساعة.",
        },
    },
    {
        "name": "daily-statistics-aggregation",
        "task": "task_monitoring.tasks.aggregate_daily_statistics",
        "kind": "crontab",
        "crontab": "0 1 * * *",
        "descriptions": {
            "en": "Daily performance statistics aggregation.",
            "fr": "Agrégation quotidienne des statistiques de performance.",
            "es": "Agregación diaria de estadísticas de rendimiento.",
            "ar": "تجميع إحصاءات الأداء اليومية.",
        },
    },
    {
        "name": "queue-depth-snapshots",
        "task": "task_monitoring.tasks.snapshot_queues",
        "kind": "crontab",
        "crontab": "*/5 * * * *",
        "descriptions": {
            "en": "Queue depth and latency snapshots for the 7-day trend.",
            "fr": "Relevés de profondeur et de latence des files pour la tendance sur 7 jours.",
            "es": "Instantáneas de profundidad y latencia de colas para la tendencia de 7 días.",
            "ar": "لقطات لعمق الطوابير وزمن انتظارها من أجل اتجاه الأيام السبعة.",
        },
    },
]


def setup_predefined() -> tuple[list[ScheduledTask], list[ScheduledTask]]:
    """Create the predefined schedules that are missing (matched by name); existing ones,
    edited or not, are left alone. Returns (created, found). The caller commits."""
    created, found = [], []
    for values in PREDEFINED:
        existing = db.session.scalar(
            select(ScheduledTask).where(ScheduledTask.name == values["name"])
        )
        if existing is not None:
            found.append(existing)
        else:
            created.append(create_schedule(timezone="UTC", **values))
    return created, found
