"""The dashboard's trend charts: hourly buckets turned into localized SVG (app.web.charts).

A week has 168 hourly points, each with a localized tooltip; Babel formatting, not SQL, was the
costly part of this panel. An hour's names never change for a language and timezone, so they
are kept across requests; numbers are formatted once per distinct value.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from babel import Locale
from babel.dates import format_skeleton, format_time, get_timezone
from babel.numbers import parse_pattern
from flask_babel import get_locale
from flask_babel import get_timezone as user_timezone
from flask_babel import gettext as _
from markupsafe import Markup

from app.services.dashboard import HourBucket
from app.web.charts import Point, Series, bar_chart, line_chart

HOURS_PER_LABEL = 24  # one axis label a day
PERCENT = parse_pattern("#,##0.0%")  # as the |percent filter


@lru_cache(maxsize=8192)
def hour_names(locale: Locale, zone: str, hour: datetime) -> tuple[str, str]:
    """An hour's short axis label and full name: 'Mon 14:00' and 'Mon, Jan 5, 2:00 PM'."""
    local = hour.astimezone(get_timezone(zone))
    axis = "Ehm" if "h" in locale.time_formats["short"].pattern else "EHm"
    day = format_skeleton("MMMEd", local, locale=locale)
    time = format_time(local, "short", locale=locale)
    full = locale.datetime_formats["medium"].replace("{1}", day).replace("{0}", time)
    return format_skeleton(axis, local, locale=locale), full


class _Numbers:
    """Localized counts and shares for one request, each distinct value formatted once."""

    def __init__(self, locale: Locale) -> None:
        self.locale = locale
        self.decimal = locale.decimal_formats[None]
        self._cache: dict[object, str] = {}

    def count(self, value: int) -> str:
        if value not in self._cache:
            self._cache[value] = self.decimal.apply(value, self.locale)
        return self._cache[value]

    def percent(self, share: float) -> str:
        key = ("%", round(share, 3))
        if key not in self._cache:
            self._cache[key] = PERCENT.apply(share, self.locale)
        return self._cache[key]


def trend_charts(buckets: Sequence[HourBucket]) -> tuple[Markup, Markup]:
    """Bars of executions per hour and a 0-100 % line of the success rate per hour.

    Polls and reloads mostly ask for a week that has not changed since the last request: the
    charts are kept per language, timezone and the hourly figures themselves.
    """
    return _trend_charts(get_locale(), str(user_timezone()), tuple(buckets))


@lru_cache(maxsize=64)
def _trend_charts(
    locale: Locale, zone: str, buckets: tuple[HourBucket, ...]
) -> tuple[Markup, Markup]:
    numbers = _Numbers(locale)
    bar_text = _(
        "%(hour)s: %(count)s executions (%(success)s success, %(failure)s failure, "
        "%(revoked)s revoked)"
    )
    rate_text = _("%(hour)s: %(rate)s success (%(count)s executions)")
    bars, rates = [], []
    for index, bucket in enumerate(buckets):
        axis, name = hour_names(locale, zone, bucket.start)
        label = axis if index % HOURS_PER_LABEL == 0 else ""
        count = numbers.count(bucket.finished)
        tooltip = bar_text % {
            "hour": name,
            "count": count,
            "success": numbers.count(bucket.success),
            "failure": numbers.count(bucket.failure),
            "revoked": numbers.count(bucket.revoked),
        }
        bars.append(Point(label, bucket.finished, tooltip))
        rate = bucket.success_rate
        if rate is None:  # no execution finished: a gap in the line
            rates.append(Point(label, None))
            continue
        tooltip = rate_text % {"hour": name, "rate": numbers.percent(rate), "count": count}
        rates.append(Point(label, round(rate * 100, 1), tooltip))
    executions = bar_chart(_("Executions per hour, last 7 days"), bars, label_every=HOURS_PER_LABEL)
    success = line_chart(
        _("Success rate per hour, last 7 days"),
        [Series(_("Success rate"), rates, "series-0")],
        unit="%",
        fixed_max=100,
        label_every=HOURS_PER_LABEL,
    )
    return executions, success
