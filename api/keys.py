"""The issuer's signing keys: fetched from its JWKS (found by OpenID Connect discovery, or AUTH_JWKS_URL),
kept while fresh, fetched again when a token names a key not yet seen, and kept when the issuer is down.

Never on a request's way but for that one case, and then shared: one fetch at a time, whoever asks.
httpx, not PyJWT's PyJWKClient, whose fetch is synchronous and would stop the event loop, every
request with it, for as long as the issuer takes to answer.
"""

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from api import metrics
from api.settings import key_url

log = logging.getLogger(__name__)

FETCH_TIMEOUT_SECONDS = 5.0
MAX_DOCUMENT_BYTES = 512 * 1024  # a JWKS of a few keys is a few KiB; an answer past this is not one
# How long a key set is fresh: the answer's Cache-Control max-age, within these bounds (RFC 9111).
DEFAULT_MAX_AGE_SECONDS = 600
MAX_AGE_BOUNDS = (60, 24 * 3600)
# A token naming a key not in the set fetches the set again at most this often, so that a flood of
# made-up key ids costs the issuer one request per interval; also the wait before a failed fetch is tried again.
REFETCH_SECONDS = 30.0
MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)
ACCEPT = {"Accept": "application/json"}


class KeyFetchError(Exception):
    """The keys could not be fetched; the message says where and why, without anything secret."""


class IssuerMismatch(KeyFetchError):
    """The discovery document names another issuer than AUTH_ISSUER: its keys are not to be trusted."""


def discovery_url(issuer: str) -> str:
    """Where OpenID Connect Discovery 1.0 (section 4) puts an issuer's configuration."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


async def fetch_json(client: httpx.AsyncClient, url: str) -> tuple[dict[str, Any], int]:
    """The JSON object at `url`, and for how many seconds it may be kept; no redirect, no more than a cap,
    no longer than FETCH_TIMEOUT_SECONDS in all (httpx's timeout is per read: a trickle would outlast it)."""
    try:
        async with asyncio.timeout(FETCH_TIMEOUT_SECONDS), client.stream("GET", url, headers=ACCEPT) as response:
            if response.status_code != 200:
                raise KeyFetchError(f"{url} answered {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise KeyFetchError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
            cache_control = response.headers.get("cache-control", "")
    except TimeoutError:
        raise KeyFetchError(f"{url} did not answer in full within {FETCH_TIMEOUT_SECONDS:g}s") from None
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as error:
        raise KeyFetchError(f"{url}: {type(error).__name__}: {error}") from None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested past the parser's depth
        raise KeyFetchError(f"{url} answered something other than JSON") from None
    if not isinstance(document, dict):
        raise KeyFetchError(f"{url} answered JSON that is not an object")
    return document, max_age_of(cache_control)


def max_age_of(cache_control: str) -> int:
    """How long an answer may be kept: its max-age within MAX_AGE_BOUNDS, DEFAULT_MAX_AGE_SECONDS without one."""
    found = MAX_AGE.search(cache_control)
    if found is None:
        return DEFAULT_MAX_AGE_SECONDS
    digits = found.group(1)  # more than 9 digits is past the upper bound, and int() refuses thousands of them
    max_age = int(digits) if len(digits) <= 9 else MAX_AGE_BOUNDS[1]
    return min(max(max_age, MAX_AGE_BOUNDS[0]), MAX_AGE_BOUNDS[1])


async def discover(client: httpx.AsyncClient, issuer: str) -> str:
    """The issuer's jwks_uri, from its discovery document, which must name it as issuer exactly."""
    document, _ = await fetch_json(client, discovery_url(issuer))
    if document.get("issuer") != issuer:
        raise IssuerMismatch(
            f"the discovery document at {discovery_url(issuer)} names the issuer {document.get('issuer')!r}, "
            f"not AUTH_ISSUER's {issuer!r}"
        )
    jwks_uri = document.get("jwks_uri")
    try:
        found = key_url(jwks_uri) if isinstance(jwks_uri, str) else None
    except ValueError as error:
        raise KeyFetchError(f"the discovery document's jwks_uri {jwks_uri!r} {error}") from None
    if found is None:
        raise KeyFetchError(f"the discovery document at {discovery_url(issuer)} gives no jwks_uri")
    return found


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A public key of the issuer's, and the one algorithm its JWK declares for it (`alg`), if it does."""

    key: jwt.PyJWK
    alg: str | None


# Public keys only: a JWKS entry of kty `oct` is a shared secret, which PyJWT would take as an HS256 key.
PUBLIC_KEY_TYPES = ("RSA", "EC", "OKP")


async def check_discovery(issuer: str) -> None:
    """Read the issuer's discovery document once, now: IssuerMismatch if it names another issuer,
    KeyFetchError if it cannot be read."""
    async with new_client() as client:
        await discover(client, issuer)


def signing_keys(document: dict[str, Any]) -> tuple[dict[str, SigningKey], str]:
    """The JWKS's public keys for signatures, by key id, and a fingerprint of them; keys for encryption,
    shared secrets, and keys PyJWT cannot read are left out."""
    keys, kept = {}, []
    for entry in document.get("keys", []) if isinstance(document.get("keys"), list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("kty") not in PUBLIC_KEY_TYPES:
            continue
        try:
            key = jwt.PyJWK(entry)
        except Exception as error:  # the issuer's data: PyJWT raises TypeError, KeyError... on some entries
            log.debug("key %r of the JWKS left out: %s: %s", entry["kid"], type(error).__name__, error)
            continue
        declared = entry.get("alg")
        keys[entry["kid"]] = SigningKey(key, declared if isinstance(declared, str) else None)
        kept.append(entry)
    return keys, json.dumps(sorted(kept, key=lambda entry: entry["kid"]), sort_keys=True)


def new_client() -> httpx.AsyncClient:
    """An HTTP client for the issuer: a short timeout, no redirects followed, nothing from the environment's proxies."""
    return httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False)


class KeySet:
    """The issuer's signing keys by key id, as last fetched, and the fetching that keeps them current."""

    def __init__(self, issuer: str, jwks_url: str | None) -> None:
        self.issuer = issuer
        self.jwks_url = jwks_url  # None: from discovery, read again only after a fetch of its jwks_uri failed
        self.discovered: str | None = None
        self.client: httpx.AsyncClient | None = None  # while the app serves: kept_fresh() opens and closes it
        self.keys: dict[str, SigningKey] = {}
        self.fingerprint = ""
        self.loaded = False  # keys fetched at least once: /ready waits for it
        self.generation = 0  # one more each time the keys change: verified tokens are checked again
        self.max_age = DEFAULT_MAX_AGE_SECONDS
        self.failing = False
        self._fetch: asyncio.Task[None] | None = None
        self._refetched = -REFETCH_SECONDS  # monotonic time of the last fetch for an unknown key id
        for outcome in ("fetched", "failed"):  # both series exist from the start, for alerts on their rate
            metrics.KEY_FETCHES.labels(outcome)

    async def refresh(self) -> None:
        """Fetch the keys; a fetch already under way is joined, not repeated. KeyFetchError if it failed."""
        if self._fetch is None or self._fetch.done():
            self._fetch = asyncio.create_task(self._load())
        await asyncio.shield(self._fetch)

    async def _load(self) -> None:
        if self.client is None:
            raise KeyFetchError("the keys are fetched while the app serves (kept_fresh), not before")
        try:
            if self.jwks_url is None and self.discovered is None:
                self.discovered = await discover(self.client, self.issuer)
            url = self.jwks_url or self.discovered or ""
            document, self.max_age = await fetch_json(self.client, url)
            keys, fingerprint = signing_keys(document)
            if not keys:
                raise KeyFetchError(f"{url} holds no signing key with a key id")
        except Exception as error:
            metrics.KEY_FETCHES.labels("failed").inc()
            self.discovered = None  # the issuer may have moved its keys: discovery is read again next time
            if isinstance(error, KeyFetchError):
                raise
            # Whatever else the issuer's answer raised is a failed fetch too: never a task that dies in silence
            # (the keys never fresh again) or a 500 for the request that asked for an unknown key id.
            raise KeyFetchError(f"the keys could not be read: {type(error).__name__}: {error}") from error
        metrics.KEY_FETCHES.labels("fetched").inc()
        if self.failing:
            log.info("the issuer's keys were fetched again: %d keys", len(keys))
            self.failing = False
        if fingerprint != self.fingerprint:
            self.keys, self.fingerprint, self.generation = keys, fingerprint, self.generation + 1
        self.loaded = True

    async def key(self, kid: str) -> SigningKey | None:
        """The key `kid` names; for one not in the set, the set fetched again first, at most every REFETCH_SECONDS."""
        found = self.keys.get(kid)
        if found is not None or time.monotonic() - self._refetched < REFETCH_SECONDS:
            return found
        self._refetched = time.monotonic()
        try:
            await self.refresh()
        except KeyFetchError as error:
            self._failed(error)
        return self.keys.get(kid)

    async def keep_fresh(self) -> None:
        """Fetch the keys now and whenever they go stale, for ever; after a failure, again soon, keeping the last."""
        while True:
            try:
                await self.refresh()
            except IssuerMismatch as error:
                log.error("refusing the issuer's keys: %s", error)
                self.failing = True
                await asyncio.sleep(REFETCH_SECONDS)
                continue
            except KeyFetchError as error:
                self._failed(error)
                await asyncio.sleep(REFETCH_SECONDS)
                continue
            await asyncio.sleep(self.max_age)

    def _failed(self, error: KeyFetchError) -> None:
        self.failing = True
        held = f"serving with the {len(self.keys)} keys last fetched" if self.loaded else "no keys yet: /ready is 503"
        log.warning("the issuer's keys could not be fetched (%s); %s", error, held)


@asynccontextmanager
async def kept_fresh(keys: KeySet) -> AsyncIterator[None]:
    """While the block runs (the app serves), the keys are fetched and kept fresh in a task of their own.

    Not awaited before serving: the issuer may be slow or down, and /health must answer at once; /ready
    is 503 until the keys have been fetched once.
    """
    keys.client = new_client()
    keeper = asyncio.create_task(keys.keep_fresh())
    try:
        yield
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        await keys.client.aclose()
        keys.client = None
