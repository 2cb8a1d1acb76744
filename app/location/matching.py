"""Location matching: normalize a name, look it up in the bundled country gazetteer.

The gazetteer (``gazetteer.csv`` beside this module, shipped in the package) lists countries with
their ISO3 code, English name and common alternate names. Names are compared after
normalization: accents removed, case folded, punctuation turned into spaces, a leading "the"
dropped, whitespace collapsed ("Côte d'Ivoire" == "cote d ivoire").
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter
from functools import cache
from importlib import resources
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import DataPoint

NON_WORD = re.compile(r"[^a-z0-9]+")
MAX_LISTED_UNMATCHED = 100


def normalize_name(name: str) -> str:
    """The comparison key of a location name."""
    decomposed = unicodedata.normalize("NFKD", name)
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    words = NON_WORD.sub(" ", ascii_only.casefold()).split()
    if words[:1] == ["the"]:
        words = words[1:]
    return " ".join(words)


@cache
def gazetteer() -> dict[str, str]:
    """Normalized name (official, ISO3 code itself, or alternate) -> ISO3 code."""
    index: dict[str, str] = {}
    text = resources.files("app.location").joinpath("gazetteer.csv").read_text("utf-8")
    for row in csv.DictReader(text.splitlines()):
        names = [row["name"], row["iso3"], *(row["alternate_names"] or "").split("|")]
        for name in names:
            if name.strip():
                index.setdefault(normalize_name(name), row["iso3"])
    return index


def match_name(name: str) -> str | None:
    """The ISO3 code of ``name``, or None when the gazetteer does not know it."""
    return gazetteer().get(normalize_name(name))


def match_locations(variable_id: int | None = None) -> dict[str, Any]:
    """Match the names of unmatched data points (of one variable, or all); the caller commits.

    Returns counts, the unmatched names (most frequent first) and names whose match disagrees
    with the ISO3 code the source gave.
    """
    query = select(DataPoint).where(DataPoint.matched_iso3.is_(None))
    if variable_id is not None:
        query = query.where(DataPoint.variable_id == variable_id)
    matched = 0
    unmatched: Counter[str] = Counter()
    mismatched: dict[str, dict[str, str]] = {}
    for point in db.session.scalars(query.order_by(DataPoint.id)).all():
        iso3 = match_name(point.location_name)
        if iso3 is None:
            unmatched[point.location_name] += 1
            continue
        point.matched_iso3 = iso3
        matched += 1
        if iso3 != point.iso3:
            mismatched[point.location_name] = {"source_iso3": point.iso3, "matched_iso3": iso3}
    db.session.flush()
    return {
        "variable_id": variable_id,
        "matched": matched,
        "unmatched_count": sum(unmatched.values()),
        "unmatched": [
            {"name": name, "points": count}
            for name, count in unmatched.most_common(MAX_LISTED_UNMATCHED)
        ],
        "mismatched": [{"name": name, **codes} for name, codes in sorted(mismatched.items())],
    }
