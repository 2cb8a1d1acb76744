"""Location tasks (``location.tasks.*``, the location_processing queue)."""

from __future__ import annotations

from typing import Any

from app.extensions import db
from app.location import matching
from app.tracking import tracked


@tracked("processing", name="location.tasks.match_locations")
def match_locations(variable_id: int | None = None) -> dict[str, Any]:
    """Match unmatched data-point location names against the bundled gazetteer."""
    result = matching.match_locations(variable_id)
    db.session.commit()
    return result
