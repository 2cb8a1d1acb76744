"""``flask users`` and ``flask tokens``: success, and clear failures with a non-zero exit."""

from __future__ import annotations

import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from app.extensions import db
from app.models import ApiToken, AuditEntry, Role, User
from app.services.tokens import hash_token


def user(name: str) -> User | None:
    return db.session.scalar(select(User).where(User.username == name))


def audit_actions() -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_create_user_and_list(runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=["users", "create", "ana", "--role", "operator", "--password", "s3cret-pass"]
    )
    assert result.exit_code == 0, result.output
    assert "Created user ana (operator)" in result.output
    assert user("ana").role == Role.OPERATOR and user("ana").check_password("s3cret-pass")
    assert "s3cret-pass" not in user("ana").password_hash
    listing = runner.invoke(args=["users", "list"])
    assert "ana" in listing.output and "operator" in listing.output
    assert audit_actions() == ["user.create"]


def test_create_user_prompts_for_the_password(runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=["users", "create", "ben", "--role", "viewer"], input="prompted-pass\nprompted-pass\n"
    )
    assert result.exit_code == 0, result.output
    assert user("ben").check_password("prompted-pass")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "create", "eve", "--role", "boss", "--password", "long-enough"], "'boss'"),
        (["users", "create", "eve", "--role", "viewer", "--password", "short"], "at least 8"),
        (
            ["users", "create", "bad name", "--role", "viewer", "--password", "long-enough"],
            "username",
        ),
        (
            ["users", "create", "viewer", "--role", "admin", "--password", "long-enough"],
            "already exists",
        ),
        (["users", "set-password", "nobody", "--password", "long-enough"], "No user named nobody"),
        (["users", "set-role", "nobody", "admin"], "No user named nobody"),
        (["users", "set-role", "viewer", "king"], "'king'"),
        (["users", "set-role", "admin", "viewer"], "last admin"),
        (["tokens", "create", "nobody"], "No user named nobody"),
        (["tokens", "revoke", "999"], "No API token"),
        (["tokens", "list", "--user", "nobody"], "No user named nobody"),
    ],
)
def test_bad_input_fails_clearly(
    runner: FlaskCliRunner, users: dict, args: list[str], message: str
) -> None:
    before = db.session.scalar(select(func.count()).select_from(User))
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output
    assert db.session.scalar(select(func.count()).select_from(User)) == before


def test_set_password_and_role(runner: FlaskCliRunner, users: dict) -> None:
    result = runner.invoke(args=["users", "set-password", "viewer", "--password", "another-pass"])
    assert result.exit_code == 0, result.output
    assert user("viewer").check_password("another-pass")
    result = runner.invoke(args=["users", "set-role", "viewer", "operator"])
    assert result.exit_code == 0, result.output
    assert user("viewer").role == Role.OPERATOR
    assert audit_actions()[-2:] == ["user.set_password", "user.set_role"]


def test_ensure_admin_generates_a_password_once(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["users", "ensure-admin"])
    assert result.exit_code == 0, result.output
    password = result.output.split("password: ", 1)[1].split()[0]
    assert user("admin").role == Role.ADMIN and user("admin").check_password(password)
    again = runner.invoke(args=["users", "ensure-admin"])
    assert again.exit_code == 0 and "already exists" in again.output
    assert password not in again.output


def test_ensure_admin_takes_the_password_from_the_environment(
    runner: FlaskCliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EWAS_ADMIN_PASSWORD", "from-the-environment")
    result = runner.invoke(args=["users", "ensure-admin"])
    assert result.exit_code == 0, result.output
    assert "from-the-environment" not in result.output
    assert user("admin").check_password("from-the-environment")


def test_ensure_admin_refuses_a_short_password(
    runner: FlaskCliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EWAS_ADMIN_PASSWORD", "short")
    result = runner.invoke(args=["users", "ensure-admin"])
    assert result.exit_code != 0 and "at least 8" in result.output
    assert user("admin") is None


def test_tokens_create_list_revoke(runner: FlaskCliRunner, users: dict) -> None:
    result = runner.invoke(args=["tokens", "create", "operator", "--name", "nightly job"])
    assert result.exit_code == 0, result.output
    plaintext = next(line for line in result.output.splitlines() if line.startswith("ewas_"))
    token = db.session.scalar(select(ApiToken))
    assert token.token_hash == hash_token(plaintext) and token.name == "nightly job"

    listing = runner.invoke(args=["tokens", "list"]).output
    assert token.prefix in listing and "nightly job" in listing and plaintext not in listing

    result = runner.invoke(args=["tokens", "revoke", token.prefix])
    assert result.exit_code == 0 and "Revoked" in result.output
    db.session.refresh(token)
    assert token.is_revoked
    assert "already revoked" in runner.invoke(args=["tokens", "revoke", str(token.id)]).output
    assert audit_actions() == ["user.create"] * 3 + ["token.create", "token.revoke"]
