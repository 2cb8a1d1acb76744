"""Translated text columns chosen by the current Flask-Babel locale.

The equivalent of django-modeltranslation: one column per language (``description_en``,
``description_fr``, ...), read through a property that falls back to English.
"""

from __future__ import annotations

from typing import Any

from flask import has_request_context
from flask_babel import get_locale
from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from app.config import LANGUAGES


def current_language() -> str:
    if not has_request_context():
        return LANGUAGES[0]
    locale = get_locale()
    return locale.language if locale is not None else LANGUAGES[0]


class TranslatedField:
    """Descriptor reading ``<field>_<current language>``, falling back to English."""

    def __init__(self, field: str) -> None:
        self.field = field

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return self.in_language(obj, current_language())

    def __set__(self, obj: Any, value: str | None) -> None:
        setattr(obj, f"{self.field}_{current_language()}", value)

    def in_language(self, obj: Any, language: str) -> str | None:
        value = getattr(obj, f"{self.field}_{language}", None) if language in LANGUAGES else None
        return value or getattr(obj, f"{self.field}_{LANGUAGES[0]}")


class TranslatedDescription:
    """Mixin: a ``description`` in every supported language."""

    description_en: Mapped[str | None] = mapped_column(Text)
    description_fr: Mapped[str | None] = mapped_column(Text)
    description_es: Mapped[str | None] = mapped_column(Text)
    description_ar: Mapped[str | None] = mapped_column(Text)

    description = TranslatedField("description")

    def descriptions(self) -> dict[str, str | None]:
        """Every language's own text (no fallback), for forms and the API."""
        return {lang: getattr(self, f"description_{lang}") for lang in LANGUAGES}
