"""Domain errors: raised by models and services, turned into form errors or JSON 4xx answers."""

from __future__ import annotations


class DomainError(Exception):
    """Base of the errors an operator can fix by changing the input."""

    code = "invalid"
    http_status = 400

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class InvalidInput(DomainError):
    """The input breaks a rule of the model (a bad name, a missing error message...)."""

    code = "invalid"
    http_status = 422


class Conflict(DomainError):
    """The input is valid but clashes with what is stored (a duplicate, a referenced row...)."""

    code = "conflict"
    http_status = 409


class NotFound(DomainError):
    code = "not_found"
    http_status = 404


class Unavailable(DomainError):
    """A service the action needs (the broker) did not answer; trying again later may work."""

    code = "unavailable"
    http_status = 503
