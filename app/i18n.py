"""Language and timezone selection for Flask-Babel."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app, has_request_context, request, session
from flask_babel import format_datetime, get_locale

from app.bounds import valid_zone
from app.config import RTL_LANGUAGES
from app.extensions import babel

TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"


def select_locale() -> str | None:
    if not has_request_context():
        return None  # workers and CLI commands use the default locale
    languages = current_app.config["LANGUAGES"]
    chosen = session.get("language")
    if chosen in languages:
        return chosen
    return request.accept_languages.best_match(languages)


def select_timezone() -> str:
    """The reader's zone; a session holding one the app cannot render (saved before the
    preference was validated) reads in the display default, else UTC, rather than failing."""
    default = current_app.config["DISPLAY_TIMEZONE"]
    chosen = session.get("timezone") if has_request_context() else None
    for name in (chosen, default):
        if isinstance(name, str) and valid_zone(name):
            return name
    return "UTC"


def text_direction(language: str) -> str:
    return "rtl" if language in RTL_LANGUAGES else "ltr"


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS_DIR))
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    app.jinja_env.globals.update(
        get_locale=get_locale, text_direction=text_direction, format_datetime=format_datetime
    )
