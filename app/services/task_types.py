"""Task types: the five of spec 7.1, and the rule that a used type cannot be deleted."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import exists, select

from app.errors import Conflict
from app.extensions import db
from app.models import TaskExecution, TaskType

DEFAULT_TASK_TYPES: dict[str, dict[str, str]] = {
    "retrieval": {
        "en": "Fetch raw data from external sources, resilient to network errors.",
        "fr": "Récupère les données brutes des sources externes, résiste aux erreurs réseau.",
        "es": "Obtiene datos brutos de fuentes externas, resistente a errores de red.",
        "ar": "جلب البيانات الخام من المصادر الخارجية مع تحمّل أخطاء الشبكة.",
    },
    "processing": {
        "en": "Transform raw data into the standard format, with validation.",
        "fr": "Transforme les données brutes au format standard, avec validation.",
        "es": "Transforma los datos brutos al formato estándar, con validación.",
        "ar": "تحويل البيانات الخام إلى الصيغة الموحدة مع التحقق من صحتها.",
    },
    "aggregation": {
        "en": "Generate derived statistics and summaries.",
        "fr": "Produit des statistiques dérivées et des synthèses.",
        "es": "Genera estadísticas derivadas y resúmenes.",
        "ar": "إنتاج الإحصاءات المشتقة والملخصات.",
    },
    "monitoring": {
        "en": "System health checks and performance metric collection.",
        "fr": "Contrôles de santé du système et collecte des métriques de performance.",
        "es": "Comprobaciones de salud del sistema y recogida de métricas de rendimiento.",
        "ar": "فحوص سلامة النظام وجمع مقاييس الأداء.",
    },
    "maintenance": {
        "en": "Database cleanup, log rotation and system optimization.",
        "fr": "Nettoyage de la base, rotation des journaux et optimisation du système.",
        "es": "Limpieza de la base de datos, rotación de registros y optimización del sistema.",
        "ar": "تنظيف قاعدة البيانات وتدوير السجلات وتحسين النظام.",
    },
}


def seed_task_types() -> list[TaskType]:
    """Create the default task types that are missing; return the ones created."""
    existing = set(db.session.scalars(select(TaskType.name)))
    created = []
    for name, descriptions in DEFAULT_TASK_TYPES.items():
        if name in existing:
            continue
        task_type = TaskType(name=name)
        for language, text in descriptions.items():
            setattr(task_type, f"description_{language}", text)
        db.session.add(task_type)
        created.append(task_type)
    db.session.flush()
    return created


def delete_task_type(task_type: TaskType) -> None:
    """Delete ``task_type`` unless executions refer to it (the database refuses it too)."""
    used = db.session.scalar(select(exists().where(TaskExecution.task_type_id == task_type.id)))
    if used:
        raise Conflict(
            _(
                "Task type %(name)s has executions and cannot be deleted.",
                name=task_type.name,
            )
        )
    db.session.delete(task_type)
    db.session.flush()
