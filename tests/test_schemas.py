"""Bad input is a 422 that names the field, and never stores anything."""

import re
import secrets
from collections.abc import AsyncIterator, Callable

import httpx
import jsonschema_rs
import pytest
from pydantic import ValidationError

from api.schemas import EMAIL_MAX_LENGTH, EMAIL_SCHEMA, NAME_MAX_LENGTH, WHITESPACE, UserCreate
from tests.helpers import ClientFactory, assert_problem, create, openapi_document

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}
BIGINT_MAX = 2**63 - 1

BAD_BODIES = {
    "not JSON": b'{"email": "a@example.com", ',
    "not UTF-8": b'{"email": "\xff@example.com", "name": "x"}',
    "a JSON array": b"[]",
    "nested too deeply": b"[" * 30000 + b"]" * 30000,
    "number too large": b'{"email": 1e999, "name": "x"}',
    "a JSON string": b'"hello"',
    "empty body": b"",
    "email a number": b'{"email": 42, "name": "x"}',
    "name a list": b'{"email": "a@example.com", "name": ["x"]}',
    "name null": b'{"email": "a@example.com", "name": null}',
    "unknown field": b'{"email": "a@example.com", "name": "x", "admin": true}',
    "id given": b'{"id": 7, "email": "a@example.com", "name": "x"}',
    "email missing": b'{"name": "x"}',
    "name missing": b'{"email": "a@example.com"}',
    "email without @": b'{"email": "not-an-email", "name": "x"}',
    "email without domain dot": b'{"email": "a@localhost", "name": "x"}',
    "email with space": b'{"email": "a b@example.com", "name": "x"}',
    "email with two @": b'{"email": "a@b@example.com", "name": "x"}',
    "email with two dots in a row": b'{"email": "a..b@example.com", "name": "x"}',
    "email with a C1 control": b'{"email": "a\\u0094b@example.com", "name": "x"}',
    "email with a no-break space": b'{"email": "a\\u00a0b@example.com", "name": "x"}',
    "email domain label starting with -": b'{"email": "a@-b.example.com", "name": "x"}',
    "email local part over 64": b'{"email": "' + b"a" * 65 + b'@example.com", "name": "x"}',
    "email empty": b'{"email": "", "name": "x"}',
    "email too long": b'{"email": "' + b"a" * (EMAIL_MAX_LENGTH - 11) + b'@example.com", "name": "x"}',
    "name empty": b'{"email": "a@example.com", "name": ""}',
    "name blank": b'{"email": "a@example.com", "name": "   "}',
    "name too long": b'{"email": "a@example.com", "name": "' + b"n" * (NAME_MAX_LENGTH + 1) + b'"}',
    "NUL in name": b'{"email": "a@example.com", "name": "a\\u0000b"}',
    "NUL in email": b'{"email": "a\\u0000@example.com", "name": "x"}',
}


async def count_users(client: httpx.AsyncClient) -> int:
    return len((await client.get("/users", params={"limit": 1000})).json())


@pytest.fixture
async def refusing(client_factory: ClientFactory, module_database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the module's one database, for the refusals below: each leaves it as it found it,
    which each checks, so that a hundred of them need not clone a database each."""
    async with client_factory(database_url=module_database_url) as client:
        yield client


def unique_email() -> str:
    return f"{secrets.token_hex(6)}@example.com"


def assert_422(response: httpx.Response) -> None:
    body = assert_problem(response, 422)
    assert body["title"] == "Unprocessable Entity"
    assert body["errors"] and all({"loc", "msg", "type"} == set(error) for error in body["errors"])


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_bad_create_bodies_are_422_and_store_nothing(refusing: httpx.AsyncClient, body: bytes) -> None:
    before = await count_users(refusing)

    assert_422(await refusing.post("/users", content=body, headers=JSON))
    assert await count_users(refusing) == before


# Leaving a field out is how a PATCH keeps it, so those two bodies are valid there.
BAD_PATCHES = {why: body for why, body in BAD_BODIES.items() if why not in ("email missing", "name missing")}


@pytest.mark.parametrize("body", BAD_PATCHES.values(), ids=BAD_PATCHES.keys())
async def test_bad_patch_bodies_are_422_and_change_nothing(refusing: httpx.AsyncClient, body: bytes) -> None:
    user = await create(refusing, unique_email())

    assert_422(await refusing.patch(f"/users/{user['id']}", content=body, headers=JSON))
    assert (await refusing.get(f"/users/{user['id']}")).json() == user


# The longest address RFC 5321 allows: a 64-character local part and a 253-character domain.
LONGEST_EMAIL = "a" * 64 + "@" + ".".join(["b" * 63] * 3 + ["c" * 61])


async def test_longest_allowed_values_are_accepted(client: httpx.AsyncClient) -> None:
    email = LONGEST_EMAIL
    name = "n" * NAME_MAX_LENGTH

    response = await client.post("/users", json={"email": email, "name": name})

    assert response.status_code == 201
    assert (response.json()["email"], response.json()["name"]) == (email, name)


async def test_the_422_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/users", json={"email": "nope", "name": "x"})

    assert_422(response)
    assert response.json()["errors"][0]["loc"] == ["body", "email"]
    assert "body.email" in response.json()["detail"]


BAD_QUERIES = {
    "limit 0": {"limit": "0"},
    "limit 1001": {"limit": "1001"},
    "limit text": {"limit": "ten"},
    "limit fraction": {"limit": "1.5"},
    "limit 10.0": {"limit": "10.0"},
    "limit with spaces": {"limit": " 10"},
    "limit with underscore": {"limit": "1_0"},
    "after negative": {"after": "-1"},
    "after beyond bigint": {"after": str(BIGINT_MAX + 1)},
    "after huge": {"after": "9" * 40},
    "after text": {"after": "x"},
}


@pytest.mark.parametrize("params", BAD_QUERIES.values(), ids=BAD_QUERIES.keys())
async def test_bad_list_parameters_are_422(refusing: httpx.AsyncClient, params: dict[str, str]) -> None:
    assert_422(await refusing.get("/users", params=params))


async def test_limit_and_after_at_their_bounds_are_accepted(client: httpx.AsyncClient) -> None:
    assert (await client.get("/users", params={"limit": 1000, "after": BIGINT_MAX})).status_code == 200
    assert (await client.get("/users", params={"limit": 1, "after": 0})).status_code == 200


ARABIC_INDIC_ONE = "\u0661"
BAD_IDS = [
    *("0", "-1", "+1", str(BIGINT_MAX + 1), "9" * 40),
    *("abc", "1.0", "1e3", "1_0", "%201", ARABIC_INDIC_ONE),
]


@pytest.mark.parametrize("user_id", BAD_IDS)
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_bad_ids_are_422(refusing: httpx.AsyncClient, method: str, user_id: str) -> None:
    await create(refusing, unique_email())  # one at least, that a DELETE would remove
    before = (await refusing.get("/users", params={"limit": 1000})).json()
    body = {"json": {"name": "x"}} if method == "PATCH" else {}

    assert_422(await refusing.request(method, f"/users/{user_id}", **body))  # type: ignore[arg-type]
    assert (await refusing.get("/users", params={"limit": 1000})).json() == before, "nothing changed"


async def test_the_largest_bigint_id_is_a_404_not_an_error(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/users/{BIGINT_MAX}")

    assert response.status_code == 404


@pytest.mark.parametrize("email", ["élodie@example.com", "ada+tag@mail.example.co.uk", "o'brien@example.ie"])
async def test_real_addresses_are_accepted(client: httpx.AsyncClient, email: str) -> None:
    assert (await create(client, email, "x"))["email"] == email


ALL_CHARACTERS = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]  # no lone surrogates in JSON


def documented(body: str, field: str) -> Callable[[str], bool]:
    """A JSON Schema validator for `field` exactly as the OpenAPI document gives it."""
    schema = openapi_document()["components"]["schemas"]
    return jsonschema_rs.validator_for(schema[body]["properties"][field], validate_formats=True).is_valid


def accepted(field: str, value: str) -> bool:
    body = {"email": "ok@example.com", "name": "Ok"} | {field: value}
    try:
        UserCreate.model_validate(body)
    except ValidationError:
        return False
    return True


def test_the_documented_white_space_is_what_str_strip_removes() -> None:
    assert {c for c in ALL_CHARACTERS if re.fullmatch(f"[{WHITESPACE}]", c)} == {
        c for c in ALL_CHARACTERS if c.isspace()
    }


@pytest.mark.parametrize("body", ["UserCreate", "UserUpdate"])
def test_the_documented_name_is_the_name_the_api_takes(body: str) -> None:
    valid = documented(body, "name")
    samples = [c for c in ALL_CHARACTERS if valid(c) != (not c.isspace() and c != "\x00")]
    names = ["x", " x ", "\tx\n", "x\x00", "\x00", " \x85\u3000", "\ufeff", "x" * 200, "x" * 201, ""]

    assert samples == [], "the pattern and str.isspace disagree"
    assert [name for name in names if valid(name) != accepted("name", name)] == []


@pytest.mark.parametrize("body", ["UserCreate", "UserUpdate"])
def test_the_documented_email_is_the_email_the_api_takes(body: str) -> None:
    valid = documented(body, "email")
    emails = [f"a{c}b@example.com" for c in ALL_CHARACTERS[:0x3100]] + [
        f"a@b{c}.example" for c in ALL_CHARACTERS[:0x3100]
    ]
    emails += [LONGEST_EMAIL, "a" * 65 + "@b.c", "a@localhost", "a@[127.0.0.1]", '"a b"@c.d', "a@b.c\n", "a" * 321]
    # The pattern read by a second engine: Python's, as generators such as hypothesis read it (an
    # anchored ECMA-262 pattern is a fullmatch: Python's own `$` would also match before a final newline).
    pattern = re.compile(EMAIL_SCHEMA["pattern"].removeprefix("^").removesuffix("$"))
    by_rust = jsonschema_rs.validator_for({"pattern": EMAIL_SCHEMA["pattern"]}).is_valid

    assert [email for email in emails if valid(email) != accepted("email", email)] == []
    assert [email for email in emails if bool(pattern.fullmatch(email)) != by_rust(email)] == []
