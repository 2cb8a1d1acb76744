"""Where to go after signing in: only a path on this site, never another host."""

from __future__ import annotations

from urllib.parse import urlsplit


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a local absolute path, else None (open-redirect protection)."""
    if not target:
        return None
    if any(ord(char) < 32 for char in target) or "\\" in target:
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target
