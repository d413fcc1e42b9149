"""The issuer's keys as fetched: within their bounds of time, size and shape, whatever the issuer answers.

Against real HTTP servers on 127.0.0.1 that answer as a broken or hostile issuer might.
"""

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import pytest

from api import keys
from api.keys import KeyFetchError, KeySet, fetch_json, kept_fresh, max_age_of, new_client, signing_keys
from bench.identity import IdentityProvider, identity_provider

pytestmark = pytest.mark.anyio

Answer = Callable[[BaseHTTPRequestHandler], None]


@contextmanager
def serving(answer: Answer) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 answering every GET with `answer`, stopped however the block ends; its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer(self)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def json_answer(document: object, status: int = 200, **headers: str) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        body = json.dumps(document).encode()
        handler.send_response(status)
        for name, value in ({"Content-Type": "application/json", "Content-Length": str(len(body))} | headers).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    return answer


def trickle(handler: BaseHTTPRequestHandler) -> None:
    """A byte every 0.1 s, 5 s at most: each read within any per-read timeout, the whole never."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.end_headers()
    try:
        for _ in range(50):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.1)
    except OSError:  # the client gave up, as it should
        return


def nested(handler: BaseHTTPRequestHandler) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def provider() -> Iterator[IdentityProvider]:
    with identity_provider() as found:
        yield found


@pytest.mark.parametrize(
    ("cache_control", "kept_for"),
    [
        ("", 600),
        ("public, max-age=300", 300),
        ("max-age=5", 60),
        ("max-age=999999", 86400),
        ("max-age=" + "9" * 5000, 86400),
        ("s-maxage=5", 600),
    ],
    ids=["absent", "within bounds", "below a minute", "above a day", "5000 digits", "another directive"],
)
def test_keys_are_kept_for_their_max_age_within_a_minute_and_a_day(cache_control: str, kept_for: int) -> None:
    assert max_age_of(cache_control) == kept_for


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (json_answer({}, status=302, Location="http://127.0.0.1:1/keys"), "answered 302"),
        (json_answer({"keys": [], "padding": "x" * (keys.MAX_DOCUMENT_BYTES + 1)}), "more than"),
        (json_answer(["a", "list"]), "not an object"),
        (nested, "other than JSON"),
    ],
    ids=["a redirect", "past the size cap", "not an object", "nested past the parser's depth"],
)
async def test_an_answer_out_of_bounds_is_a_failed_fetch(answer: Answer, words: str) -> None:
    with serving(answer) as url:
        async with new_client() as client:
            with pytest.raises(KeyFetchError, match=words):
                await fetch_json(client, f"{url}/keys")


async def test_a_trickling_answer_is_cut_off_at_the_timeout_in_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "FETCH_TIMEOUT_SECONDS", 0.5)
    with serving(trickle) as url:
        async with new_client() as client:
            started = time.monotonic()
            with pytest.raises(KeyFetchError, match=r"did not answer in full within 0\.5s"):
                await fetch_json(client, f"{url}/keys")
            took = time.monotonic() - started

    assert took < 2.0


def test_only_public_signing_keys_with_an_id_are_taken(provider: IdentityProvider) -> None:
    good = provider.jwks()["keys"][0]
    document = {
        "keys": [
            good,
            good | {"kid": "listed-alg", "alg": ["RS256"]},  # PyJWT raises TypeError on it
            good | {"kid": "for-encryption", "use": "enc"},
            {"kty": "oct", "kid": "shared-secret", "k": "c2VjcmV0"},  # PyJWT would take it as an HS256 key
            good | {"kid": 7},
            good | {"kid": "no-modulus", "n": None},
            "not a key",
        ]
    }

    found, _ = signing_keys(document)

    assert list(found) == [good["kid"]]


async def test_a_jwks_uri_in_the_clear_to_another_host_is_refused() -> None:
    def discovery(handler: BaseHTTPRequestHandler) -> None:
        issuer = f"http://{handler.headers['Host']}/realm"  # as the client asked for it: 127.0.0.1:<port>
        json_answer({"issuer": issuer, "jwks_uri": "http://keys.example/jwks"})(handler)

    with serving(discovery) as url:
        key_set = KeySet(f"{url}/realm", None)
        async with new_client() as client:
            key_set.client = client
            with pytest.raises(KeyFetchError, match=r"jwks_uri 'http://keys\.example/jwks' must be https://"):
                await key_set.refresh()


async def test_a_discovery_document_naming_another_issuer_is_refused_while_serving(
    provider: IdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    provider.discovered_issuer = "https://elsewhere.example/realms/bench"
    key_set = KeySet(provider.issuer, None)

    async with kept_fresh(key_set):
        for _ in range(100):
            if any("refusing the issuer's keys" in record.getMessage() for record in caplog.records):
                break
            await anyio.sleep(0.01)

    assert not key_set.loaded and key_set.keys == {}
    assert [record.levelno for record in caplog.records if "refusing" in record.getMessage()] == [logging.ERROR]
