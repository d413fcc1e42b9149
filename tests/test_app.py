"""The app as built: its routes in the order requests are matched, and an OpenAPI document that describes every
status the service answers with, and its body."""

from typing import Any

import pytest

from api.app import create_app
from tests.helpers import make_settings, openapi_document

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

EXPECTED = {
    ("/users", "post"): {"201", "409", "413", "422", "503"},
    ("/users", "get"): {"200", "422", "503"},
    ("/users/{user_id}", "get"): {"200", "304", "404", "422", "503"},
    ("/users/{user_id}", "patch"): {"200", "404", "409", "412", "413", "422", "428", "503"},
    ("/users/{user_id}", "delete"): {"204", "404", "412", "422", "428", "503"},
    ("/health", "get"): {"200"},
    ("/ready", "get"): {"200", "503"},
}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return openapi_document()


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


def parameter(openapi: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    found = next(p for p in openapi["paths"][path][method]["parameters"] if p["name"] == name)
    schema: dict[str, Any] = found["schema"]
    return schema


@pytest.mark.parametrize(
    ("path", "method", "name", "minimum", "maximum"),
    [
        ("/users", "get", "limit", 1, 1000),
        ("/users", "get", "after", 0, 2**63 - 1),
        ("/users/{user_id}", "get", "user_id", 1, 2**63 - 1),
        ("/users/{user_id}", "patch", "user_id", 1, 2**63 - 1),
        ("/users/{user_id}", "delete", "user_id", 1, 2**63 - 1),
    ],
)
def test_numeric_parameters_carry_their_bounds_in_json_schema_terms(
    openapi: dict[str, Any], path: str, method: str, name: str, minimum: int, maximum: int
) -> None:
    schema = parameter(openapi, path, method, name)

    assert (schema["type"], schema["minimum"], schema["maximum"]) == ("integer", minimum, maximum)
    assert "ge" not in schema and "le" not in schema, "pydantic's names, which JSON Schema does not know"


def test_ids_are_documented_as_64_bit(openapi: dict[str, Any]) -> None:
    assert parameter(openapi, "/users/{user_id}", "get", "user_id")["format"] == "int64"
    assert parameter(openapi, "/users", "get", "after")["format"] == "int64"
    assert openapi["components"]["schemas"]["UserPublic"]["properties"]["id"]["format"] == "int64"


def test_the_patch_body_needs_a_field_and_takes_no_null(openapi: dict[str, Any]) -> None:
    update = openapi["components"]["schemas"]["UserUpdate"]

    assert update["minProperties"] == 1
    assert update["additionalProperties"] is False
    for field in update["properties"].values():
        assert field["type"] == "string" and "anyOf" not in field and "default" not in field


@pytest.mark.parametrize("body", ["UserCreate", "UserUpdate"])
def test_emails_and_names_document_the_checks_they_get(openapi: dict[str, Any], body: str) -> None:
    email = openapi["components"]["schemas"][body]["properties"]["email"]
    name = openapi["components"]["schemas"][body]["properties"]["name"]

    assert (email["format"], email["maxLength"]) == ("idn-email", 320)
    assert email["pattern"].startswith("^") and email["pattern"].endswith("$")
    assert (name["minLength"], name["maxLength"]) == (1, 200)
    assert name["pattern"].startswith("^") and name["pattern"].endswith("$")


def test_operation_ids_are_the_route_names(openapi: dict[str, Any]) -> None:
    ids = {
        (path, method): operation["operationId"]
        for (path, method) in EXPECTED
        for operation in [openapi["paths"][path][method]]
    }

    assert ids == {
        ("/users", "post"): "create_user",
        ("/users", "get"): "list_users",
        ("/users/{user_id}", "get"): "get_user",
        ("/users/{user_id}", "patch"): "update_user",
        ("/users/{user_id}", "delete"): "delete_user",
        ("/health", "get"): "health",
        ("/ready", "get"): "ready",
    }


def test_a_created_user_links_to_what_can_be_done_with_it(openapi: dict[str, Any]) -> None:
    links = openapi["paths"]["/users"]["post"]["responses"]["201"]["links"]
    operation_ids = {operation["operationId"] for path in openapi["paths"].values() for operation in path.values()}

    assert {link["operationId"] for link in links.values()} == {"get_user", "update_user", "delete_user"}
    assert all(link["operationId"] in operation_ids for link in links.values())
    assert all(link["parameters"]["user_id"] == "$response.body#/id" for link in links.values())
    assert links["UpdateUser"]["parameters"]["header.If-Match"] == "$response.header.ETag"
    assert links["DeleteUser"]["parameters"]["header.If-Match"] == "$response.header.ETag"


@pytest.mark.parametrize(("path", "method"), [key for key, statuses in EXPECTED.items() if "503" in statuses])
def test_every_503_documents_retry_after(openapi: dict[str, Any], path: str, method: str) -> None:
    headers = openapi["paths"][path][method]["responses"]["503"]["headers"]

    assert headers["Retry-After"]["schema"] == {"type": "integer", "minimum": 0}


def test_etags_and_the_headers_that_send_them_back_are_documented(openapi: dict[str, Any]) -> None:
    users, user = openapi["paths"]["/users"], openapi["paths"]["/users/{user_id}"]
    headers = {
        ("post", "201"): users["post"]["responses"]["201"]["headers"],
        ("get", "200"): user["get"]["responses"]["200"]["headers"],
        ("get", "304"): user["get"]["responses"]["304"]["headers"],
        ("patch", "200"): user["patch"]["responses"]["200"]["headers"],
    }
    parameters = {
        method: {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
        for method, operation in [("post", users["post"]), *user.items()]
    }

    assert all("ETag" in documented for documented in headers.values())
    assert {"Location", "Content-Location", "Idempotent-Replayed"} <= set(headers["post", "201"])
    assert "content" not in user["get"]["responses"]["304"], "a 304 has no body"
    assert parameters == {
        "post": {"Idempotency-Key"}, "get": {"If-None-Match", "Consistency-Token"}, "patch": {"If-Match"},
        "delete": {"If-Match"},
    }  # fmt: skip
    assert users["post"]["responses"]["409"]["headers"]["Retry-After"]["schema"]["type"] == "integer"


def test_the_email_lookup_documents_the_checks_it_gets(openapi: dict[str, Any]) -> None:
    email = parameter(openapi, "/users", "get", "email")

    assert email["anyOf"][0]["maxLength"] == 320 and email["format"] == "idn-email"
    assert email["pattern"].startswith("^") and email["pattern"].endswith("$")


def test_the_documentations_routes_come_after_the_services() -> None:
    app = create_app(make_settings("postgresql://nobody@127.0.0.1:1/none"))
    paths = [getattr(route, "path", "") for route in app.router.routes]

    assert paths.index("/openapi.json") > paths.index("/metrics") > paths.index("/users/{user_id}")
