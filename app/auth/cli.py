"""``flask users ...`` and ``flask tokens ...``: manage accounts and API tokens from a shell."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click
from flask.cli import AppGroup

from app.errors import DomainError
from app.extensions import db
from app.models import Role
from app.services import tokens as token_service
from app.services import users as user_service

users_cli = AppGroup("users", help="Manage users and their roles.")
tokens_cli = AppGroup("tokens", help="Manage API tokens.")
F = TypeVar("F", bound=Callable[..., Any])
ROLE_CHOICE = click.Choice([role.value for role in Role], case_sensitive=False)


def _fail(error: DomainError) -> click.ClickException:
    db.session.rollback()
    return click.ClickException(error.message)


def _password_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--password",
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        help=help_text,
    )


@users_cli.command("create")
@click.argument("username")
@click.option("--role", type=ROLE_CHOICE, required=True, help="viewer, operator or admin.")
@_password_option("The password (asked for when not given).")
def create_user(username: str, role: str, password: str) -> None:
    """Create a user with a role."""
    try:
        user = user_service.create_user(username, role, password)
    except DomainError as error:
        raise _fail(error) from error
    db.session.commit()
    click.echo(f"Created user {user.username} ({user.role.value}).")


@users_cli.command("set-password")
@click.argument("username")
@_password_option("The new password (asked for when not given).")
def set_password(username: str, password: str) -> None:
    """Set a user's password (this signs them out everywhere else)."""
    try:
        user_service.set_password(user_service.get_user(username), password)
    except DomainError as error:
        raise _fail(error) from error
    db.session.commit()
    click.echo(f"Password of {username} changed.")


@users_cli.command("set-role")
@click.argument("username")
@click.argument("role", type=ROLE_CHOICE)
def set_role(username: str, role: str) -> None:
    """Change a user's role."""
    try:
        user_service.set_role(user_service.get_user(username), role)
    except DomainError as error:
        raise _fail(error) from error
    db.session.commit()
    click.echo(f"{username} is now {role.lower()}.")


@users_cli.command("list")
def list_users() -> None:
    """List users with their roles."""
    for user in db.session.scalars(user_service.users_query()):
        state = "" if user.is_active else "  (inactive)"
        click.echo(f"{user.username:<32} {user.role.value:<9}{state}")


@users_cli.command("ensure-admin")
def ensure_admin() -> None:
    """Create the user ``admin`` when there is no admin (password: EWAS_ADMIN_PASSWORD, or new)."""
    try:
        created = user_service.ensure_admin(os.environ.get("EWAS_ADMIN_PASSWORD"))
    except DomainError as error:
        raise _fail(error) from error
    if created is None:
        click.echo("An admin already exists.")
        return
    db.session.commit()
    user, generated = created
    if generated is None:
        click.echo(f"Created admin user {user.username!r} with the password EWAS_ADMIN_PASSWORD.")
    else:
        click.echo(f"Created admin user {user.username!r} with the password: {generated}")
        click.echo("It is shown only this once; change it with `flask users set-password admin`.")


@tokens_cli.command("create")
@click.argument("username")
@click.option("--name", default="", help="What the token is for (shown in lists).")
def create_token(username: str, name: str) -> None:
    """Create an API token for a user and print it (only this once)."""
    try:
        issued = token_service.create_token(user_service.get_user(username), name)
    except DomainError as error:
        raise _fail(error) from error
    db.session.commit()
    click.echo(f"Token {issued.token.prefix} (id {issued.token.id}) for {username}:")
    click.echo(issued.plaintext)
    click.echo(
        "Store it now: it cannot be shown again. Send it as 'Authorization: Bearer <token>'."
    )


@tokens_cli.command("revoke")
@click.argument("token_id_or_prefix")
def revoke_token(token_id_or_prefix: str) -> None:
    """Revoke an API token, given its id or its prefix."""
    try:
        token = token_service.find_token(token_id_or_prefix)
    except DomainError as error:
        raise _fail(error) from error
    if token_service.revoke_token(token):
        db.session.commit()
        click.echo(f"Revoked token {token.prefix} of {token.user.username}.")
    else:
        click.echo(f"Token {token.prefix} was already revoked.")


@tokens_cli.command("list")
@click.option("--user", "username", default=None, help="Only this user's tokens.")
def list_tokens(username: str | None) -> None:
    """List API tokens (prefix, user, name, last use; never the token itself)."""
    try:
        user = user_service.get_user(username) if username else None
    except DomainError as error:
        raise _fail(error) from error
    for token in db.session.scalars(token_service.tokens_query(user)):
        used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
        state = "revoked" if token.is_revoked else "active"
        click.echo(
            f"{token.id:>5} {token.prefix} {token.user.username:<24} {state:<8} "
            f"last used {used}  {token.name}"
        )
