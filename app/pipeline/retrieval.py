"""Retrieval: one HTTP GET of a variable's endpoint, stored verbatim with its checksum.

Errors are sorted for the retry policy: 429, 5xx, timeouts and connection errors raise
``TransientNetworkError`` or a network error (the retrieval type retries them); other 4xx
answers raise ``PermanentRetrievalError``, which no policy retries. Every error names the URL
(secrets in its query masked), and every request is logged with its status and time, so a failed
fetch leaves more than "No log records captured" on its execution.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select

from app.extensions import db
from app.models import RawPayload, Source, Variable
from app.models.types import utcnow
from app.tracking import DataValidationError, TransientNetworkError
from app.tracking.capture import REDACTED, SECRET_KEY_PATTERN

USER_AGENT = "ewas-task-engine (+https://github.com/ewas)"
# Query parameters whose values are credentials, beyond the names capture already redacts.
SECRET_QUERY_NAMES = frozenset({"client_id", "client_secret", "sig", "signature"})
log = logging.getLogger(__name__)


class PermanentRetrievalError(Exception):
    """The source refused the request (4xx other than 429): retrying will not help."""


def endpoint_url(source: Source, variable: Variable) -> str:
    """The URL of a variable: the source's base URL joined with the variable's endpoint path;
    IDMC's client id (``IDMC_CLIENT_ID``) is added as a query parameter when configured."""
    if not source.base_url:
        raise DataValidationError(_("Source %(code)s has no base URL.", code=source.code))
    url = source.base_url.rstrip("/") + "/" + (variable.endpoint_path or "").lstrip("/")
    client_id = current_app.config.get("IDMC_CLIENT_ID")
    if source.code == "idmc" and client_id:
        separator = "&" if "?" in url else "?"
        url += separator + urllib.parse.urlencode({"client_id": client_id})
    return url


def shown_url(url: str) -> str:
    """``url`` fit for errors and logs: credential query values (client id, token, key) masked."""
    parts = urllib.parse.urlsplit(url)
    if not parts.query:
        return url
    query = [
        (name, REDACTED if _secret(name) else value)
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query, safe="*")))


def _secret(name: str) -> bool:
    return name.lower() in SECRET_QUERY_NAMES or bool(SECRET_KEY_PATTERN.search(name))


def fetch(url: str, timeout: float, max_bytes: int) -> tuple[int, str | None, bytes]:
    """GET ``url``; returns (status, content type, body) or raises a sorted error naming the URL.

    Logs the request once: method, URL (secrets masked), status or failure, and time taken.
    """
    shown = shown_url(url)
    request = urllib.request.Request(
        url, headers={"User-Agent": USER_AGENT, "Accept": "application/json"}
    )
    started = time.monotonic()

    def took() -> str:
        return f"{(time.monotonic() - started) * 1000:.0f} ms"

    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(max_bytes + 1)
            status, content_type = response.status, response.headers.get("Content-Type")
    except urllib.error.HTTPError as error:  # before URLError: HTTPError is one
        log.warning("GET %s -> HTTP %s in %s", shown, error.code, took())
        if error.code == 429 or error.code >= 500:
            raise TransientNetworkError(f"HTTP {error.code} from GET {shown}") from None
        raise PermanentRetrievalError(f"HTTP {error.code} from GET {shown}") from None
    except http.client.IncompleteRead as error:
        log.warning("GET %s -> truncated answer in %s: %s", shown, took(), error)
        raise TransientNetworkError(f"truncated answer from GET {shown}: {error}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        host = urllib.parse.urlsplit(url).hostname
        log.warning("GET %s -> failed in %s: %s", shown, took(), reason)
        raise TransientNetworkError(
            f"cannot reach {host}: {type(reason).__name__}: {reason} (GET {shown})"
        ) from None
    log.info("GET %s -> HTTP %s, %s bytes in %s", shown, status, len(body), took())
    if len(body) > max_bytes:
        raise PermanentRetrievalError(f"answer from GET {shown} exceeds {max_bytes} bytes")
    return status, content_type, body


def retrieve(source_id: int, variable_id: int, task_id: str | None = None) -> RawPayload:
    """Fetch the variable's endpoint and add its raw payload (the caller commits)."""
    source = db.session.get(Source, source_id)
    variable = db.session.get(Variable, variable_id)
    if source is None or variable is None or variable.source_id != source_id:
        raise DataValidationError(
            _("No variable %(v)s of source %(s)s.", v=variable_id, s=source_id)
        )
    url = endpoint_url(source, variable)
    config = current_app.config
    status, content_type, body = fetch(
        url, config["RETRIEVAL_TIMEOUT"], config["RETRIEVAL_MAX_BYTES"]
    )
    payload = RawPayload(
        source_id=source_id,
        variable_id=variable_id,
        url=url,
        status_code=status,
        content_type=(content_type or "")[:200] or None,
        body=body.decode("utf-8", errors="replace"),
        size_bytes=len(body),
        checksum=hashlib.sha256(body).hexdigest(),
        fetched_at=utcnow(),
        task_id=task_id,
    )
    db.session.add(payload)
    db.session.flush()
    return payload


def summary(payload: RawPayload) -> dict[str, Any]:
    """The small JSON result of a retrieval; ``unchanged`` when the previous fetch was identical."""
    previous_checksum = db.session.scalar(
        select(RawPayload.checksum)
        .where(RawPayload.variable_id == payload.variable_id, RawPayload.id < payload.id)
        .order_by(RawPayload.id.desc())
        .limit(1)
    )
    return {
        "raw_id": payload.id,
        "source_id": payload.source_id,
        "variable_id": payload.variable_id,
        "status_code": payload.status_code,
        "size_bytes": payload.size_bytes,
        "checksum": payload.checksum,
        "fetched_at": payload.fetched_at.isoformat(),
        "unchanged": previous_checksum == payload.checksum,
    }
