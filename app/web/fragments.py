"""HTMX fragments: full page or fragment from one view, and conditional answers for polling.

Polled fragments answer ``If-None-Match`` with 304 when nothing changed, so a field team on a
slow link pays a few hundred bytes per poll instead of the whole table.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import make_response, render_template, request
from werkzeug.wrappers import Response


def is_htmx() -> bool:
    """True when HTMX asked (it sends ``HX-Request: true``); boosted links want the full page."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get("HX-Boosted")


def conditional(body: str, status: int = 200) -> Response:
    """Answer ``body`` with a strong ETag, or an empty 304 when the client already holds it."""
    etag = hashlib.blake2b(body.encode("utf-8"), digest_size=16).hexdigest()
    response = make_response(body, status)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache, private"
    response.vary.update(("HX-Request", "Cookie", "Accept-Language"))
    return response.make_conditional(request)


def page_or_fragment(page: str, fragment: str, **context: Any) -> Response:
    """Render ``fragment`` for HTMX requests and ``page`` otherwise, both conditionally."""
    template = fragment if is_htmx() else page
    return conditional(render_template(template, **context))
