"""Who may call what: every view declares a rule, and a request to a view without one is denied.

``@requires(Role.VIEWER)`` lets viewers read; writes (POST, PUT, PATCH, DELETE) then need an
operator unless the rule names its own ``write`` role. ``@public`` opens a view to everyone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app.models import Role

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Paths open to everyone even before their views exist (the API issue adds the health route).
API_PREFIX = "/tasks/api/"
PUBLIC_PATHS = frozenset({f"{API_PREFIX}health/"})
MACHINE_PATHS = frozenset({"/metrics"})  # outside the API prefix, but read by scrapers, not people
ROLE_LABELS = {Role.VIEWER: _l("viewer"), Role.OPERATOR: _l("operator"), Role.ADMIN: _l("admin")}

F = TypeVar("F", bound=Callable[..., Any])


def role_label(role: Role) -> str:
    """The role's name in the current language."""
    return str(ROLE_LABELS[role])


@dataclass(frozen=True)
class AccessRule:
    """The least role needed to read and to write; None means no sign-in needed."""

    read: Role | None
    write: Role | None

    def required_role(self, method: str) -> Role | None:
        return self.read if method.upper() in READ_METHODS else self.write

    @property
    def is_public(self) -> bool:
        return self.read is None and self.write is None


PUBLIC = AccessRule(read=None, write=None)


def access_rule(role: Role, *, write: Role | None = None) -> AccessRule:
    """Reads need ``role``; writes need ``write``, by default at least operator."""
    if write is None:
        write = role if role.allows(Role.OPERATOR) else Role.OPERATOR
    return AccessRule(read=role, write=write)


def requires(role: Role, *, write: Role | None = None) -> Callable[[F], F]:
    """Declare the least ``role`` of a view; writes need ``write``, by default at least operator."""
    rule = access_rule(role, write=write)

    def decorate(view: F) -> F:
        view.access_rule = rule  # type: ignore[attr-defined]  # the view carries its rule
        return view

    return decorate


def may_operate() -> bool:
    """Whether the signed-in user may act (operators and admins): the one check behind every
    action button, in views and templates (the Jinja global ``may_operate``)."""
    return bool(current_user.is_authenticated and current_user.role.allows(Role.OPERATOR))


def public(view: F) -> F:
    """Declare a view open to anonymous callers (the login page)."""
    view.access_rule = PUBLIC  # type: ignore[attr-defined]  # the view carries its rule
    return view


def declare(app: Flask, endpoint: str, rule: AccessRule) -> None:
    """Declare the rule of an endpoint whose view we do not decorate (an extension's view)."""
    app.extensions.setdefault("access_rules", {})[endpoint] = rule


def rule_for(app: Flask, endpoint: str, path: str | None = None) -> AccessRule | None:
    """The declared rule of ``endpoint`` (of the URL rule ``path``), or None when undeclared."""
    if endpoint == "static" or path in PUBLIC_PATHS:
        return PUBLIC
    declared = app.extensions.get("access_rules", {})
    if endpoint in declared:
        return declared[endpoint]
    view = app.view_functions.get(endpoint)
    return getattr(view, "access_rule", None)


def is_api_request() -> bool:
    """API callers get JSON errors (and 401, never a redirect to the login page): the path is
    under the API or a machine path, or a bearer token was sent."""
    authorization = request.headers.get("Authorization", "").strip().lower()
    return (
        request.path.startswith(API_PREFIX)
        or request.path in MACHINE_PATHS
        or authorization.startswith("bearer")
    )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    status: int = 200  # 401 (sign in first) or 403 (not allowed) when denied


def decide(rule: AccessRule | None, method: str, role: Role | None) -> Decision:
    """Allow or deny ``role`` (None: anonymous) calling ``method`` on a view with ``rule``."""
    if rule is None:
        return Decision(False, 403)  # default deny: a view nobody declared is open to nobody
    required = rule.required_role(method)
    if required is None:
        return Decision(True)
    if role is None:
        return Decision(False, 401)
    return Decision(role.allows(required), 200 if role.allows(required) else 403)


def current_decision() -> Decision:
    """The decision for the current request and the current user."""
    url_rule = request.url_rule
    rule = rule_for(current_app, request.endpoint or "", url_rule.rule if url_rule else None)
    role = current_user.role if current_user.is_authenticated else None
    return decide(rule, request.method, role)
