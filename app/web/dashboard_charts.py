"""The dashboard's trend charts: hourly buckets turned into localized SVG (app.web.charts)."""

from __future__ import annotations

from collections.abc import Sequence

from babel.dates import format_skeleton, format_time
from flask_babel import format_decimal, format_percent, get_locale, to_user_timezone
from flask_babel import gettext as _
from markupsafe import Markup

from app.services.dashboard import HourBucket
from app.web.charts import Point, Series, bar_chart, line_chart

HOURS_PER_LABEL = 24  # one axis label a day


def _hour_names(buckets: Sequence[HourBucket]) -> tuple[list[str], list[str]]:
    """Short axis labels and full tooltip names of each hour, in the reader's language and
    timezone ("Mon 14:00" and "Mon, Jan 5, 2:00 PM" in English)."""
    locale = get_locale()
    axis = "Ehm" if "h" in locale.time_formats["short"].pattern else "EHm"
    joined = locale.datetime_formats["medium"]
    labels, names = [], []
    for bucket in buckets:
        moment = to_user_timezone(bucket.start)
        labels.append(format_skeleton(axis, moment, locale=locale))
        day = format_skeleton("MMMEd", moment, locale=locale)
        time = format_time(moment, "short", locale=locale)
        names.append(joined.replace("{1}", day).replace("{0}", time))
    return labels, names


def executions_chart(buckets: Sequence[HourBucket]) -> Markup:
    """Bars: executions finished per hour, with their outcome split in each tooltip."""
    labels, names = _hour_names(buckets)
    points = [
        Point(
            label,
            bucket.finished,
            _(
                "%(hour)s: %(count)s executions (%(success)s success, %(failure)s failure, "
                "%(revoked)s revoked)",
                hour=name,
                count=format_decimal(bucket.finished),
                success=format_decimal(bucket.success),
                failure=format_decimal(bucket.failure),
                revoked=format_decimal(bucket.revoked),
            ),
        )
        for bucket, label, name in zip(buckets, labels, names, strict=True)
    ]
    return bar_chart(_("Executions per hour, last 7 days"), points, label_every=HOURS_PER_LABEL)


def success_rate_chart(buckets: Sequence[HourBucket]) -> Markup:
    """A line from 0 to 100 %: the success rate of each hour; hours without executions are gaps."""
    labels, names = _hour_names(buckets)
    points = []
    for bucket, label, name in zip(buckets, labels, names, strict=True):
        rate = bucket.success_rate
        tooltip = (
            _(
                "%(hour)s: %(rate)s success (%(count)s executions)",
                hour=name,
                rate=format_percent(rate, "#,##0.0%"),
                count=format_decimal(bucket.finished),
            )
            if rate is not None
            else ""
        )
        points.append(Point(label, None if rate is None else round(rate * 100, 1), tooltip))
    series = Series(_("Success rate"), points, "series-0")
    return line_chart(
        _("Success rate per hour, last 7 days"),
        [series],
        unit="%",
        fixed_max=100,
        label_every=HOURS_PER_LABEL,
    )
