"""A stand-in for the operator's identity provider, on 127.0.0.1: keys of its own, OpenID Connect discovery and a
JWKS over real HTTP, and access tokens minted as a provider mints them (RFC 9068).

The tests drive users-api against it (a key rotated, the provider stopped or slow, every kind of bad
token), and `make bench` measures users-api-auth with it. What it serves can be changed while it runs,
and it counts what it was asked for.
"""

import functools
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

AUDIENCE = "users-api"
EVERY_SCOPE = "users:read users:write metrics:read"


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@functools.cache
def first_keys() -> tuple[PrivateKey, PrivateKey]:
    """The RSA-2048 and P-256 keys every provider of this process starts with: an RSA key takes ~0.1 s to make."""
    return rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1())


class IdentityProvider:
    """An issuer at http://127.0.0.1:<port>/realms/bench with an RSA-2048 key (`rsa-1`) and a P-256 key (`ec-1`)."""

    def __init__(self) -> None:
        rsa_key, ec_key = first_keys()
        self.private: dict[str, PrivateKey] = {"rsa-1": rsa_key, "ec-1": ec_key}
        self.published = ["rsa-1", "ec-1"]  # the key ids the JWKS holds
        self.fetches: Counter[str] = Counter()  # by path
        self.delay = 0.0  # seconds every answer waits: a slow provider
        self.discovered_issuer: str | None = None  # what discovery names as issuer; None: the issuer itself
        self.max_age = 300  # the JWKS's Cache-Control max-age
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}/realms/bench"
        self.jwks_url = f"{self.issuer}/protocol/openid-connect/certs"
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()  # wakes the answers a `delay` holds, so none outlives stop()

    def start(self) -> "IdentityProvider":
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop answering: a connection to it is refused from now on."""
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=10)

    def add_key(self, kid: str, key: PrivateKey | None = None) -> None:
        """A new key, RSA unless another is given, published at once (a rotation's first step)."""
        self.private[kid] = key or rsa.generate_private_key(65537, 2048)
        self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            public = self.private[kid].public_key()
            if isinstance(public, rsa.RSAPublicKey):
                jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public)
            elif isinstance(public, ec.EllipticCurvePublicKey):
                jwk = jwt.algorithms.ECAlgorithm.to_jwk(public)
            else:
                jwk = jwt.algorithms.OKPAlgorithm.to_jwk(public)
            keys.append(json.loads(jwk) | {"kid": kid, "use": "sig"})
        return {"keys": keys}

    def token(
        self,
        *,
        kid: str = "rsa-1",
        scope: str | None = EVERY_SCOPE,
        lifetime: float = 300,
        headers: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        """An access token as the provider issues it; `claims` and `headers` override or add, `drop` leaves out."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer, "aud": AUDIENCE, "sub": "user-7", "client_id": "bench-client",
            "iat": now, "exp": now + int(lifetime), "jti": secrets.token_hex(8), "scope": scope,
        }  # fmt: skip
        payload = {name: value for name, value in (payload | claims).items() if name not in drop and value is not None}
        key = self.private[kid]
        alg = (
            "RS256"
            if isinstance(key, rsa.RSAPrivateKey)
            else "ES256"
            if isinstance(key, ec.EllipticCurvePrivateKey)
            else "EdDSA"
        )
        header = {"typ": "at+jwt", "kid": kid, "alg": alg} | (headers or {})
        return jwt.encode(payload, key, algorithm=header["alg"], headers=header)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches[self.path] += 1
                # A slow provider's answer ends with the provider: written later, into a test that has moved
                # on, its client long gone, it would print a broken pipe into that test's output.
                if provider.stopping.wait(provider.delay):
                    return
                base = provider.issuer.split("127.0.0.1", 1)[1].split("/", 1)[1]
                if self.path == f"/{base}/.well-known/openid-configuration":
                    issuer = provider.discovered_issuer or provider.issuer
                    self._answer({"issuer": issuer, "jwks_uri": provider.jwks_url}, max_age=3600)
                elif self.path == f"/{base}/protocol/openid-connect/certs":
                    self._answer(provider.jwks(), max_age=provider.max_age)
                else:
                    self.send_error(404)

            def _answer(self, document: dict[str, Any], max_age: int) -> None:
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", f"public, max-age={max_age}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read the counts, not a line per fetch."""

        return Handler


@contextmanager
def identity_provider() -> Iterator[IdentityProvider]:
    """A provider serving while the block runs, stopped however it ends."""
    provider = IdentityProvider().start()
    try:
        yield provider
    finally:
        if provider.thread is not None and provider.thread.is_alive():
            provider.stop()
