"""Jinja filters that show times, durations and numbers in the reader's language and timezone."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal, TypeGuard

from babel import Locale
from babel.dates import DateTimePattern, get_date_format, get_datetime_format, get_time_format
from babel.numbers import get_decimal_symbol, get_group_symbol
from flask.sansio.app import App
from flask_babel import (
    format_datetime,
    format_decimal,
    format_percent,
    format_timedelta,
    get_locale,
    get_timezone,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from app.bounds import displayable

STATUS_LABELS = {
    "pending": _l("pending"),
    "started": _l("started"),
    "success": _l("success"),
    "failure": _l("failure"),
    "retry": _l("retry"),
    "revoked": _l("revoked"),
    # a pipeline run's status, and the states of its steps that are not an execution's
    "running": _l("running"),
    "waiting": _l("waiting"),
    "not_run": _l("not run"),
    "replaced": _l("replaced"),
}


def _aware(moment: datetime) -> datetime:
    """Aware, and within the range any reader's timezone can show."""
    return displayable(moment)


Style = Literal["short", "medium", "long", "full"]
NAMED_STYLES = frozenset({"short", "medium", "long", "full"})


def _is_named(style: str) -> TypeGuard[Style]:
    return style in NAMED_STYLES


@lru_cache(maxsize=64)
def _named_style(locale: str, style: Style) -> tuple[str, DateTimePattern, DateTimePattern]:
    """The glue, date and time patterns Babel combines for a named style, looked up once."""
    parsed = Locale.parse(locale)
    return (
        # a plain str at run time (the glue "{1} {0}"), whatever Babel's hint says
        str(get_datetime_format(style, locale=parsed)).replace("'", ""),
        get_date_format(style, locale=parsed),
        get_time_format(style, locale=parsed),
    )


def when(moment: datetime | None, style: str = "medium") -> str:
    """A date and time in the user's timezone and language; empty for None.

    Named styles give exactly Babel's ``format_datetime`` text, with the patterns looked up once
    per language instead of per call: a table of 50 rows formats 100 of them.
    """
    if moment is None:
        return ""
    if not _is_named(style):
        return format_datetime(_aware(moment), style)
    locale = get_locale()
    local = _aware(moment).astimezone(get_timezone())
    glue, date_pattern, time_pattern = _named_style(str(locale), style)
    return glue.replace(
        "{0}", time_pattern.apply(local.timetz(), locale, reference_date=local.date())
    ).replace("{1}", date_pattern.apply(local.date(), locale))


def iso_time(moment: datetime) -> str:
    """A moment as a ``<time datetime>`` value: UTC, ISO-8601, milliseconds at most (the HTML
    standard allows up to three fraction digits; Python's ``isoformat`` writes six)."""
    text = _aware(moment).astimezone(UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """'3 minutes ago' or 'in 2 hours', localized."""
    if moment is None:
        return ""
    now = now or datetime.now(UTC)
    return format_timedelta(_aware(moment) - now, add_direction=True, threshold=0.9)


def number_formatter() -> Callable[..., str]:
    """Format a number with the reader's grouping and decimal symbols."""
    locale = get_locale()
    group, decimal = get_group_symbol(locale), get_decimal_symbol(locale)
    table = str.maketrans({",": group, ".": decimal})

    def number(value: float, decimals: int = 0) -> str:
        return f"{value:,.{decimals}f}".translate(table)

    return number


def duration_formatter(missing: str = "") -> Callable[[float | None], str]:
    """Seconds as a short human duration (420 ms, 3.2 s, 4 min 10 s, 2 h 5 min), for many
    values: the texts are translated once; ``missing`` stands for None."""
    number = number_formatter()
    millis, secs = _("%(value)s ms"), _("%(value)s s")
    min_sec, hour_min = _("%(minutes)s min %(seconds)s s"), _("%(hours)s h %(minutes)s min")

    def duration(seconds: float | None) -> str:
        if seconds is None:
            return missing
        if seconds < 1:
            return millis % {"value": number(round(seconds * 1000))}
        if seconds < 60:
            return secs % {"value": number(seconds, 1)}
        whole = int(seconds)
        if whole < 3600:
            return min_sec % {"minutes": whole // 60, "seconds": whole % 60}
        return hour_min % {"hours": whole // 3600, "minutes": whole % 3600 // 60}

    return duration


def duration(seconds: float | None) -> str:
    """Seconds as a short human duration: 420 ms, 3.2 s, 4 min 10 s, 2 h 5 min."""
    return duration_formatter()(seconds)


def number(value: float | int | None, pattern: str | None = None) -> str:
    """A number with the locale's grouping and decimal signs."""
    if value is None:
        return ""
    return format_decimal(value, pattern)


def percent(share: float | None) -> str:
    """A share in 0..1 as a localized percentage with one decimal."""
    if share is None:
        return "-"
    return format_percent(share, "#,##0.0%")


def megabytes(kilobytes: int | None) -> str:
    if kilobytes is None:
        return ""
    return _("%(value)s MB", value=format_decimal(kilobytes / 1024, "#,##0.0"))


def status_label(value: str) -> str:
    """A task status in the reader's language (the badge also carries its colour)."""
    return str(STATUS_LABELS.get(value, value))


CODE_TAGS = frozenset({"code", "pre", "bdi"})
QUALIFIED_ERROR = re.compile(r"^(?:[A-Za-z_][\w]*\.)+([A-Za-z_]\w*)(?=:|$)")


def short_error(message: str | None) -> str:
    """An error's first line with its exception type by short name, for a list's narrow column:
    ``app.tracking.policies.DataValidationError: bad row`` reads ``DataValidationError: bad row``.
    """
    lines = (message or "").strip().splitlines()
    return QUALIFIED_ERROR.sub(r"\1", lines[0]) if lines else ""


def code(
    value: object,
    tag: str = "code",
    css: str | None = None,
    title: str | None = None,
    label: str | None = None,
) -> Markup:
    """A code-like value (crontab, JSON, id, task or queue name, error, traceback, URL) as
    left-to-right text isolated from the page, so a right-to-left page shows ``0 6 * * *`` and
    ``{"a": [1]}`` as written instead of reordering their neutral characters.

    The one way templates show such values: ``{{ schedule.crontab|code }}``,
    ``{{ execution.traceback|code('pre', 'traceback') }}``, ``{{ message|code('bdi') }}``.
    A ``pre`` that scrolls (a block of its own, at most 28rem high) takes a ``label``: it becomes
    a named region in the tab order, so a keyboard user can scroll it too.
    """
    if tag not in CODE_TAGS:
        raise ValueError(f"code values are shown in one of {sorted(CODE_TAGS)}, not {tag!r}")
    if label is not None and tag != "pre":
        raise ValueError("only a pre scrolls: a label is for code('pre', ...)")
    classes = f"{css} ltr" if css else "ltr"
    hint = Markup(' title="{}"').format(title) if title else Markup("")
    if label is not None:
        hint += Markup(' tabindex="0" role="region" aria-label="{}"').format(label)
    return Markup('<{0} class="{1}" dir="ltr"{2}>{3}</{0}>').format(
        Markup(tag), classes, hint, escape("" if value is None else value)
    )


QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def isolate_quoted(message: object) -> Markup:
    """A message in prose that quotes code-like values (``'61 * * * *' is not a valid crontab``):
    each quoted value is isolated left to right, the prose keeps the page's direction."""
    text = "" if message is None else str(message)
    parts, last = [], 0
    for quoted in QUOTED.finditer(text):
        parts += [escape(text[last : quoted.start()]), code(quoted.group(0), "bdi")]
        last = quoted.end()
    return Markup("").join([*parts, escape(text[last:])])


def init_app(app: App) -> None:
    app.jinja_env.globals["status_label"] = status_label
    app.jinja_env.filters.update(
        when=when,
        ago=ago,
        iso_time=iso_time,
        duration=duration,
        number=number,
        percent=percent,
        megabytes=megabytes,
        code=code,
        short_error=short_error,
        isolate_quoted=isolate_quoted,
    )
