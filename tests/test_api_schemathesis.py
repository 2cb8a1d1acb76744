"""Property-based calls generated from the OpenAPI document: no input yields a server error."""

from __future__ import annotations

from collections.abc import Callable

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings

from app.models import Role
from tests.support import bearer


def test_no_server_error_on_generated_input(app: Flask, token_for: Callable) -> None:
    headers = bearer(token_for(Role.OPERATOR))
    document = app.test_client().get("/tasks/api/openapi.json", headers=headers).json
    schema = schemathesis.openapi.from_dict(document)
    # Worker control is left out: it would act on whatever workers share this Redis.
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if "/workers/" not in result.ok().path or result.ok().method == "get"
    ]
    client = app.test_client()
    failures = []
    for operation in operations:

        @settings(
            max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            response = client.open(
                case.formatted_path,
                method=case.method,
                headers={**(case.headers or {}), **headers},
                query_string=case.query or None,
                json=case.body if isinstance(case.body, (dict, list)) else None,
            )
            if response.status_code >= 500:
                failures.append(
                    (
                        case.method,
                        case.formatted_path,
                        response.status_code,
                        response.get_data(as_text=True)[:300],
                    )
                )

        check()
    assert not failures, failures[:5]
