"""The OpenAPI document describes every status the service answers with, and its body."""

from typing import Any

import pytest
from fastapi import FastAPI

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

EXPECTED = {
    ("/users", "post"): {"201", "409", "413", "422", "503"},
    ("/users", "get"): {"200", "422", "503"},
    ("/users/{user_id}", "get"): {"200", "404", "422", "503"},
    ("/users/{user_id}", "patch"): {"200", "404", "409", "413", "422", "503"},
    ("/users/{user_id}", "delete"): {"204", "404", "422", "503"},
    ("/health", "get"): {"200"},
    ("/ready", "get"): {"200", "503"},
}


@pytest.fixture
def openapi(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


@pytest.mark.parametrize(("path", "method"), EXPECTED)
def test_every_status_is_documented(openapi: dict[str, Any], path: str, method: str) -> None:
    assert set(openapi["paths"][path][method]["responses"]) == EXPECTED[path, method]


@pytest.mark.parametrize(("path", "method"), EXPECTED)
def test_errors_are_documented_as_problem_json(openapi: dict[str, Any], path: str, method: str) -> None:
    for code, response in openapi["paths"][path][method]["responses"].items():
        if code.startswith(("4", "5")):
            assert response["content"] == {"application/problem+json": {"schema": PROBLEM_REF}}


def test_success_bodies_have_schemas(openapi: dict[str, Any]) -> None:
    users = openapi["paths"]["/users"]
    assert users["post"]["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UserPublic"
    }
    assert users["get"]["responses"]["200"]["content"]["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/UserPublic"
    }
    assert "Location" in users["post"]["responses"]["201"]["headers"]
    assert "Link" in users["get"]["responses"]["200"]["headers"]


def test_problem_schema_has_the_rfc_9457_members(openapi: dict[str, Any]) -> None:
    problem = openapi["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem["properties"])
