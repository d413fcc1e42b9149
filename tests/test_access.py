"""Who may do what: every /users route and /metrics needs a bearer access token from AUTH_ISSUER with its scope.

Against a stand-in identity provider on 127.0.0.1 (bench/identity.py): its own keys, discovery and JWKS
over real HTTP. Every refusal RFC 6750, RFC 9068 and OWASP ASVS 9 ask of a resource server is one case.
"""

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from api.app import create_app
from api.logs import REQUEST_LOGGER
from api.ops.cluster import find_available_port
from bench.identity import AUDIENCE, IdentityProvider, identity_provider
from tests.helpers import ClientFactory, assert_problem, make_settings

pytestmark = pytest.mark.anyio

BARE = 'Bearer realm="users-api"'


@pytest.fixture
def provider() -> Iterator[IdentityProvider]:
    with identity_provider() as found:
        yield found


async def until_ready(client: httpx.AsyncClient, path: str = "/ready") -> httpx.Response:
    """/ready's answer once it is 200 (the issuer's keys fetched), or the last after 5 s."""
    for _ in range(500):
        ready = await client.get(path)
        if ready.status_code == 200:
            break
        await anyio.sleep(0.01)
    return ready


@pytest.fixture
async def authed(client_factory: ClientFactory, provider: IdentityProvider) -> AsyncIterator[httpx.AsyncClient]:
    """The app with authentication on, its keys from `provider`, ready."""
    async with client_factory(auth_issuer=provider.issuer, auth_audience=AUDIENCE) as client:
        assert (await until_ready(client)).status_code == 200
        yield client


@pytest.fixture
async def refusing(
    client_factory: ClientFactory, provider: IdentityProvider, module_database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """As `authed`, on the module's one database: for refusals, which store nothing."""
    async with client_factory(
        database_url=module_database_url, auth_issuer=provider.issuer, auth_audience=AUDIENCE
    ) as client:
        assert (await until_ready(client)).status_code == 200
        yield client


def bearer(token: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


def claims(provider: IdentityProvider) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": provider.issuer,
        "aud": AUDIENCE,
        "sub": "user-7",
        "iat": now,
        "exp": now + 300,
        "scope": "users:read",
    }


def unsigned(provider: IdentityProvider) -> str:
    """`alg: none`: no signature at all."""
    return segments({"alg": "none", "typ": "at+jwt", "kid": "rsa-1"}, claims(provider)) + "."


def confused(provider: IdentityProvider) -> str:
    """HS256, keyed with the RSA public key's PEM: what a verifier that trusts `alg` would accept."""
    pem = (
        provider.private["rsa-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signed = segments({"alg": "HS256", "typ": "at+jwt", "kid": "rsa-1"}, claims(provider))
    return f"{signed}.{b64(hmac.digest(pem, signed.encode(), hashlib.sha256))}"


def tampered(provider: IdentityProvider) -> str:
    """A valid token whose payload now claims another subject, its signature left as it was."""
    header, _, signature = provider.token().split(".")
    return f"{header}.{segments({}, claims(provider) | {'sub': 'admin'}).split('.')[1]}.{signature}"


def without_kid(provider: IdentityProvider) -> str:
    return jwt.encode(claims(provider), provider.private["rsa-1"], algorithm="RS256", headers={"typ": "at+jwt"})


def signed_by_another(provider: IdentityProvider, **headers: Any) -> str:
    """Signed by a key of someone else's, naming the issuer's EC key, with `headers` pointing at theirs."""
    theirs = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims(provider), theirs, algorithm="ES256", headers={"typ": "at+jwt", "kid": "ec-1"} | headers)


def attackers_jwk() -> dict[str, Any]:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    found: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
    return found


def on_a_p384_key(provider: IdentityProvider) -> str:
    """ES256 naming a published key of another curve (P-384): refused before any signature is checked."""
    provider.add_key("ec-384", ec.generate_private_key(ec.SECP384R1()))
    return segments({"alg": "ES256", "typ": "at+jwt", "kid": "ec-384"}, claims(provider)) + ".c2ln"


def infinite_exp(provider: IdentityProvider) -> str:
    """A signed token whose exp is JSON's Infinity, which Python's json reads as a float."""
    return jwt.encode(
        claims(provider) | {"exp": float("inf")}, provider.private["rsa-1"], algorithm="RS256",
        headers={"typ": "at+jwt", "kid": "rsa-1"},
    )  # fmt: skip


# Each refusal: the token, and words its error_description must hold.
REFUSED: dict[str, tuple[Callable[[IdentityProvider], str], str]] = {
    "expired": (lambda p: p.token(lifetime=-120), "has expired"),
    "nbf ahead": (lambda p: p.token(nbf=int(time.time()) + 300), "not valid yet"),
    "another issuer": (lambda p: p.token(iss="https://issuer.example"), "another issuer"),
    "another audience": (lambda p: p.token(aud="another-api"), "another audience"),
    "no audience": (lambda p: p.token(drop=("aud",)), "no aud claim"),
    "no exp": (lambda p: p.token(drop=("exp",)), "no exp claim"),
    "no sub": (lambda p: p.token(drop=("sub",)), "no sub claim"),
    "no iat": (lambda p: p.token(drop=("iat",)), "no iat claim"),
    "no iss": (lambda p: p.token(drop=("iss",)), "no iss claim"),
    "iat ahead": (lambda p: p.token(iat=int(time.time()) + 300), "not valid yet"),
    "exp a string": (lambda p: p.token(exp=str(int(time.time()) + 300)), "exp claim is not a number"),
    "exp past any date": (lambda p: p.token(exp=10**400), "exp claim is out of range"),
    "exp infinite": (infinite_exp, "claims are not valid"),
    "an attacker's key in jwk": (lambda p: signed_by_another(p, jwk=attackers_jwk()), "signature does not verify"),
    "jku naming their key set": (
        lambda p: signed_by_another(p, jku="https://attacker.example/jwks"),
        "signature does not verify",
    ),
    "x5u naming their certificate": (
        lambda p: signed_by_another(p, x5u="https://attacker.example/cert.pem"),
        "signature does not verify",
    ),
    "ES256 on a P-384 key": (on_a_p384_key, "does not fit"),
    "typ JWT": (lambda p: p.token(headers={"typ": "JWT"}), "type (typ)"),
    "alg none": (unsigned, "algorithm is not accepted"),
    "HS256 keyed with the RSA PEM": (confused, "algorithm is not accepted"),
    "RS256 naming the EC key": (lambda p: p.token(headers={"kid": "ec-1"}), "does not fit"),
    "a key not published": (lambda p: p.token(headers={"kid": "rsa-9"}), "does not publish"),
    "no kid": (without_kid, "names no key"),
    "critical headers": (lambda p: p.token(headers={"crit": ["exp"]}), "critical header"),
    "tampered payload": (tampered, "signature does not verify"),
    "garbage": (lambda p: "not-a-token", "three dot-separated parts"),
    "two segments": (lambda p: "e30.e30", "three dot-separated parts"),
    "undecodable header": (lambda p: "%%%.e30.sig", "header is not base64url"),
    "a header nested too deeply": (lambda p: f"{b64(b'[' * 2500 + b']' * 2500)}.e30.sig", "header is not base64url"),
    "16 KiB": (lambda p: "a" * 16 * 1024, "longer than 8192 bytes"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
async def test_a_token_that_fails_a_check_is_a_401_saying_which(
    refusing: httpx.AsyncClient, provider: IdentityProvider, case: str
) -> None:
    make, words = REFUSED[case]
    token = make(provider)

    response = await refusing.get("/users", headers=bearer(token))

    assert_problem(response, 401)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(f'{BARE}, error="invalid_token", error_description="')
    assert words in challenge and words in response.json()["detail"]
    assert token[-40:] not in challenge + response.text, "the token is never echoed"


@pytest.mark.parametrize(
    "request_options",
    [
        {},
        {"headers": {"Authorization": "Basic dXNlcjpwYXNz"}},
        {"headers": {"Authorization": "Bearer "}},
        {"params": {"access_token": "x.y.z"}},
        {"headers": {"Cookie": "access_token=x.y.z"}},
    ],
    ids=["no header", "Basic", "Bearer and no token", "a token in the query", "a token in a cookie"],
)
async def test_without_a_bearer_token_a_401_challenges_with_no_error(
    refusing: httpx.AsyncClient, provider: IdentityProvider, request_options: dict[str, Any]
) -> None:
    valid = provider.token()  # still only the Authorization header counts
    if "params" in request_options:
        request_options["params"]["access_token"] = valid
    if "Cookie" in request_options.get("headers", {}):
        request_options["headers"]["Cookie"] = f"access_token={valid}"

    response = await refusing.get("/users", **request_options)

    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == BARE


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_a_valid_token_is_taken_whatever_the_schemes_case(
    authed: httpx.AsyncClient, provider: IdentityProvider, scheme: str
) -> None:
    assert (await authed.get("/users", headers=bearer(provider.token(), scheme))).status_code == 200


async def test_scopes_are_per_route_and_writing_does_not_imply_reading(
    authed: httpx.AsyncClient, provider: IdentityProvider
) -> None:
    writer, reader = bearer(provider.token(scope="users:write")), bearer(provider.token(scope="users:read"))

    created = await authed.post("/users", json={"email": "w@example.com", "name": "W"}, headers=writer)
    read = await authed.get(f"/users/{created.json()['id']}", headers=writer)
    refused_write = await authed.delete(f"/users/{created.json()['id']}", headers=reader)

    assert created.status_code == 201
    assert_problem(read, 403)
    assert read.headers["www-authenticate"] == f'{BARE}, error="insufficient_scope", scope="users:read"'
    assert_problem(refused_write, 403)
    assert refused_write.headers["www-authenticate"].endswith('scope="users:write"')
    assert (await authed.get(f"/users/{created.json()['id']}", headers=reader)).status_code == 200


@pytest.mark.parametrize("granted", [{"scp": ["users:read", "openid"]}, {"scp": "openid users:read"}])
async def test_scopes_are_read_from_scp_too(
    authed: httpx.AsyncClient, provider: IdentityProvider, granted: dict[str, Any]
) -> None:
    token = provider.token(scope=None, **granted)  # Okta's array, Entra ID's string

    assert (await authed.get("/users", headers=bearer(token))).status_code == 200


async def test_metrics_need_metrics_read(authed: httpx.AsyncClient, provider: IdentityProvider) -> None:
    assert_problem(await authed.get("/metrics"), 401)
    assert (await authed.get("/metrics", headers=bearer(provider.token(scope="users:read")))).status_code == 403
    assert (await authed.get("/metrics", headers=bearer(provider.token(scope="metrics:read")))).status_code == 200


@pytest.mark.parametrize("path", ["/health", "/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"])
async def test_probes_and_the_document_are_open_to_all(refusing: httpx.AsyncClient, path: str) -> None:
    assert (await refusing.get(path)).status_code == 200
    assert (await refusing.head(path)).status_code != 401  # a HEAD is the router's to answer (a 405 on /health)


async def test_an_open_path_with_a_trailing_slash_is_redirected_not_refused(refusing: httpx.AsyncClient) -> None:
    redirect = await refusing.get("/health/")

    assert redirect.status_code == 307
    assert redirect.headers["location"].endswith("/health")


async def test_an_open_path_is_open_to_reads_alone(refusing: httpx.AsyncClient, provider: IdentityProvider) -> None:
    # A method added later to a probe's path (a POST /ready) is closed until it is given its scope.
    assert_problem(await refusing.post("/ready"), 401)
    assert_problem(await refusing.options("/health"), 401)
    assert (await refusing.post("/ready", headers=bearer(provider.token(scope="users:read")))).status_code == 405


async def test_authentication_comes_before_the_body_and_the_database(
    client_factory: ClientFactory, provider: IdentityProvider
) -> None:
    # A database nothing listens on: a request that reached it would be a 503, one whose body was read a 422.
    down = f"postgresql://nobody:nothing@127.0.0.1:{find_available_port()}/none"
    async with client_factory(
        database_url=down, pool_min_size=0, auth_issuer=provider.issuer, auth_audience=AUDIENCE
    ) as client:
        anonymous = await client.post("/users", content=b'{"email": ', headers={"content-type": "application/json"})
        refused = await client.post("/users", content=b"{", headers=bearer(provider.token(lifetime=-120)))

    assert_problem(anonymous, 401)
    assert_problem(refused, 401)
    assert "traceresponse" in anonymous.headers


async def test_a_new_key_is_taken_once_the_issuer_publishes_it(
    authed: httpx.AsyncClient, provider: IdentityProvider
) -> None:
    provider.add_key("rsa-2")

    response = await authed.get("/users", headers=bearer(provider.token(kid="rsa-2")))

    assert response.status_code == 200, response.text


async def test_a_flood_of_unknown_key_ids_costs_the_issuer_one_fetch(
    authed: httpx.AsyncClient, provider: IdentityProvider
) -> None:
    before = provider.fetches.copy()

    refusals: list[int] = []

    async def with_an_unknown_key() -> None:
        token = provider.token(headers={"kid": secrets.token_hex(8)})
        refusals.append((await authed.get("/users", headers=bearer(token))).status_code)

    async with anyio.create_task_group() as tasks:
        for _ in range(100):
            tasks.start_soon(with_an_unknown_key)

    fetched = sum((provider.fetches - before).values())
    assert refusals == [401] * 100
    assert fetched == 1, "one JWKS fetch for 100 unknown key ids"


async def test_while_the_issuer_is_down_its_known_keys_still_verify(
    authed: httpx.AsyncClient, provider: IdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    known, unknown = provider.token(), provider.token(headers={"kid": "rsa-9"})
    provider.stop()

    assert (await authed.get("/users", headers=bearer(known))).status_code == 200
    refused = await authed.get("/users", headers=bearer(unknown))
    assert_problem(refused, 401)
    assert "does not publish" in refused.headers["www-authenticate"]
    assert any("keys could not be fetched" in record.getMessage() for record in caplog.records)


async def test_health_answers_at_once_while_the_issuer_is_slow_and_ready_waits_for_its_keys(
    client_factory: ClientFactory, provider: IdentityProvider
) -> None:
    provider.delay = 5.0
    async with client_factory(auth_issuer=provider.issuer, auth_audience=AUDIENCE) as client:
        started = time.monotonic()
        health = await client.get("/health")
        answered_in = time.monotonic() - started
        ready = await client.get("/ready")

    assert health.status_code == 200 and answered_in < 1.0
    assert (
        assert_problem(ready, 503)["detail"]
        == "the service has not fetched its identity provider's keys yet; retry shortly"
    )


async def test_the_request_line_names_the_tokens_subject_and_client(
    authed: httpx.AsyncClient, provider: IdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    token = provider.token(sub="ada", client_id="reports")

    await authed.get("/users", headers=bearer(token))

    line = next(
        record
        for record in caplog.records
        if record.name == REQUEST_LOGGER and record.getMessage().startswith("GET /users 200")
    )
    assert (line.sub, line.client_id) == ("ada", "reports")  # type: ignore[attr-defined]
    assert token not in caplog.text


async def test_an_idempotency_key_is_its_clients_own(authed: httpx.AsyncClient, provider: IdentityProvider) -> None:
    ada, grace = {"email": "ada@example.com", "name": "Ada"}, {"email": "grace@example.com", "name": "Grace"}
    first, second = bearer(provider.token(sub="first")), bearer(provider.token(sub="second"))
    key = {"Idempotency-Key": '"shared-key"'}

    created = await authed.post("/users", json=ada, headers=first | key)
    same_key_other_client = await authed.post("/users", json=ada, headers=second | key)
    own_answer = await authed.post("/users", json=grace, headers=second | key)
    replayed = await authed.post("/users", json=ada, headers=first | key)

    assert created.status_code == 201
    assert_problem(same_key_other_client, 409)  # the email is taken: never the first client's kept 201
    assert own_answer.status_code == 201 and own_answer.json()["email"] == grace["email"]
    assert replayed.status_code == 201 and replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json() == created.json()


async def test_keys_come_from_auth_jwks_url_when_it_is_set(
    client_factory: ClientFactory, provider: IdentityProvider
) -> None:
    async with client_factory(
        auth_issuer=provider.issuer, auth_audience=AUDIENCE, auth_jwks_url=provider.jwks_url
    ) as client:
        assert (await until_ready(client)).status_code == 200
        answered = await client.get("/users", headers=bearer(provider.token()))

    assert answered.status_code == 200
    assert not [path for path in provider.fetches if path.endswith("openid-configuration")], "no discovery"


async def test_a_path_or_method_no_route_serves_needs_a_token_too(
    refusing: httpx.AsyncClient, provider: IdentityProvider
) -> None:
    # Closed unless opened: a route added later is not open to all by having been forgotten here.
    token = bearer(provider.token(scope="users:write"))

    assert_problem(await refusing.get("/nowhere"), 401)
    assert_problem(await refusing.get("/nowhere", headers=token), 404)
    assert_problem(await refusing.put("/users"), 401)
    assert_problem(await refusing.put("/users", headers=token), 405)


async def test_under_a_root_path_every_route_keeps_its_scope(provider: IdentityProvider, database_url: str) -> None:
    # uvicorn --root-path, or the app mounted under a prefix: the router matches the path without it.
    app = create_app(make_settings(database_url, auth_issuer=provider.issuer, auth_audience=AUDIENCE))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(manager.app, root_path="/api")
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ready = await until_ready(client, "/api/ready")
            open_to_all = [await client.get(path) for path in ("/api/health", "/api/openapi.json", "/api/docs")]
            anonymous = [await client.get(path) for path in ("/api/users", "/api/users/1", "/api/metrics")]
            read = await client.get("/api/users", headers=bearer(provider.token(scope="users:read")))

    assert ready.status_code == 200
    assert [response.status_code for response in open_to_all] == [200, 200, 200]
    assert [response.status_code for response in anonymous] == [401, 401, 401]
    assert read.status_code == 200


async def test_a_refused_requests_line_names_who_was_refused(
    authed: httpx.AsyncClient, provider: IdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)

    await authed.delete("/users/1", headers=bearer(provider.token(sub="ada", client_id="reports", scope="users:read")))

    line = next(record for record in caplog.records if record.getMessage().startswith("DELETE /users/{user_id} 403"))
    assert (line.sub, line.client_id) == ("ada", "reports")  # type: ignore[attr-defined]


@pytest.mark.parametrize("alg", ["PS256", "EdDSA"])
async def test_ps256_and_eddsa_are_taken_once_the_operator_adds_them(
    client_factory: ClientFactory, provider: IdentityProvider, alg: str
) -> None:
    provider.add_key("ed-1", ed25519.Ed25519PrivateKey.generate())
    token = provider.token(kid="rsa-1", headers={"alg": "PS256"}) if alg == "PS256" else provider.token(kid="ed-1")
    answers = []
    for algorithms in ("RS256,ES256", "RS256,ES256,PS256,EdDSA"):
        async with client_factory(
            auth_issuer=provider.issuer, auth_audience=AUDIENCE, auth_algorithms=algorithms
        ) as client:
            assert (await until_ready(client)).status_code == 200
            answers.append(await client.get("/users", headers=bearer(token)))

    assert "algorithm is not accepted" in assert_problem(answers[0], 401)["detail"]
    assert answers[1].status_code == 200, answers[1].text
