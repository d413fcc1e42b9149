"""Bearer access tokens (RFC 9068 JWTs) as the operator's identity provider issues them: checked, then believed.

The checks run in the order RFC 9068 section 4 and OWASP ASVS 9 give, the cheap ones first, so that a
token refused by its size or header costs no signature check: size and shape; `alg`; `typ`; no `crit`;
`kid` naming a known key that fits `alg`; the signature; `iss`; `aud`; `exp`, `iat` and `sub` present,
`exp` and `nbf` with LEEWAY_SECONDS. `jku`, `x5u` and `jwk` headers are never read: keys come from
the issuer's JWKS alone.
"""

import base64
import binascii
import hashlib
import json
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

from api.keys import KeySet, SigningKey

MAX_TOKEN_BYTES = 8 * 1024
LEEWAY_SECONDS = 30
# Which key type (and curve) each algorithm may be verified with: an RS256 token naming an EC key is
# refused before any cryptography (HS256 and none are not in AUTH_ALGORITHMS to begin with).
KEY_TYPES = {"RS256": ("RSA", None), "PS256": ("RSA", None), "ES256": ("EC", "secp256r1"), "EdDSA": ("OKP", None)}
# Verified tokens kept, by the SHA-256 of the whole token, so that a client's next request with it costs
# a hash rather than a signature check; each hit checks `exp` again, and a change of keys empties it
# (docs/levers.md, "verified tokens remembered").
VERIFIED_MAX = 10_000


class InvalidToken(Exception):
    """A token that fails a check; the message says which, in general words, and never holds the token."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for: its issuer and subject, the client that asked for it, its scopes."""

    issuer: str
    subject: str
    client_id: str | None
    scopes: frozenset[str]
    expires: float


def scopes_of(claims: dict[str, Any]) -> frozenset[str]:
    """The token's scopes: `scope`, space-separated (RFC 8693), or `scp`, an array (Okta) or a string (Entra ID)."""
    granted = claims.get("scope", claims.get("scp", ""))
    if isinstance(granted, str):
        return frozenset(granted.split())
    if isinstance(granted, list):
        return frozenset(scope for scope in granted if isinstance(scope, str))
    return frozenset()


def client_of(claims: dict[str, Any]) -> str | None:
    """The OAuth client the token was issued to: `client_id` (RFC 9068), else `azp` (OpenID Connect, Entra ID v2)."""
    client = claims.get("client_id", claims.get("azp"))
    return client if isinstance(client, str) else None


def media_type(typ: object) -> str:
    """A `typ` compared as RFC 7515 says: case-insensitively, `application/` left out."""
    text = typ.lower() if isinstance(typ, str) else ""
    return text.removeprefix("application/")


class Verifier:
    """Checks a token against AUTH_ISSUER, AUTH_AUDIENCE, AUTH_ALGORITHMS, AUTH_TOKEN_TYPES and the issuer's keys."""

    def __init__(self, keys: KeySet, audience: str, algorithms: tuple[str, ...], token_types: tuple[str, ...]) -> None:
        self.keys = keys
        self.audience = audience
        self.algorithms = algorithms
        self.token_types = frozenset(media_type(typ) for typ in token_types)
        self.verified: OrderedDict[bytes, Principal] = OrderedDict()
        self.generation = keys.generation

    async def verify(self, token: str) -> Principal:
        """The principal `token` speaks for; InvalidToken, saying which check failed, if any does."""
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken(f"the token is longer than {MAX_TOKEN_BYTES} bytes")
        digest = hashlib.sha256(token.encode()).digest()
        if self.generation != self.keys.generation:
            self.verified.clear()  # the keys changed: every token is checked again against the new ones
            self.generation = self.keys.generation
        known = self.verified.get(digest)
        if known is not None:
            if known.expires + LEEWAY_SECONDS <= time.time():
                del self.verified[digest]
                raise InvalidToken("the token has expired")
            return known
        principal = await self._check(token)
        self.verified[digest] = principal
        if len(self.verified) > VERIFIED_MAX:
            self.verified.popitem(last=False)  # the oldest first: a bounded memory whatever clients send
        return principal

    async def _check(self, token: str) -> Principal:
        if token.count(".") != 2:
            raise InvalidToken("the token is not a JWS in compact form (three dot-separated parts)")
        header = header_of(token)
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise InvalidToken("the token's signature algorithm is not accepted")
        if media_type(header.get("typ")) not in self.token_types:
            raise InvalidToken("the token's type (typ) is not an accepted access token type")
        if "crit" in header:
            raise InvalidToken("the token has critical header parameters this service does not understand")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("the token names no key (kid)")
        key = await self.keys.key(kid)
        if key is None:
            raise InvalidToken("the token is signed with a key the issuer does not publish")
        if not fits(key, alg):
            raise InvalidToken("the token's key does not fit its signature algorithm")
        claims = self._claims(token, key.key, alg)
        return Principal(
            issuer=claims["iss"],
            subject=claims["sub"],
            client_id=client_of(claims),
            scopes=scopes_of(claims),
            expires=numeric_date(claims, "exp"),
        )

    def _claims(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.keys.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "iss", "aud"], "strict_aud": False},
            )
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature does not verify") from None
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet (its nbf or iat is ahead)") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token was issued by another issuer") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token is meant for another audience") from None
        except jwt.MissingRequiredClaimError as error:
            raise InvalidToken(f"the token has no {error.claim} claim") from None
        except (jwt.PyJWTError, OverflowError):  # OverflowError: PyJWT's int() of an infinite date
            raise InvalidToken("the token's claims are not valid") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidToken("the token's sub claim is not a string")
        for name in ("exp", "iat", "nbf"):
            numeric_date(claims, name)
        return claims


def numeric_date(claims: dict[str, Any], name: str) -> float:
    """A date claim's seconds: a finite JSON number, as RFC 7519 (2, NumericDate) has it, where PyJWT would
    also take a string of digits; 0.0 for one absent (`nbf`, which is optional)."""
    value = claims.get(name, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"the token's {name} claim is not a number")
    try:
        seconds = float(value)
    except OverflowError:
        raise InvalidToken(f"the token's {name} claim is out of range") from None
    if not math.isfinite(seconds):
        raise InvalidToken(f"the token's {name} claim is out of range")
    return seconds


def header_of(token: str) -> dict[str, Any]:
    """The JOSE header, read here rather than by PyJWT, which would check `crit` before `alg` and `typ`."""
    encoded = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError, RecursionError):  # RecursionError: JSON nested past the parser's depth
        raise InvalidToken("the token's header is not base64url-encoded JSON") from None
    if not isinstance(header, dict):
        raise InvalidToken("the token's header is not a JSON object")
    return header


def fits(key: SigningKey, alg: str) -> bool:
    """`key` may verify an `alg` signature: the right type (and curve), and `alg` if its JWK declares one."""
    key_type, curve = KEY_TYPES[alg]
    if key.key.key_type != key_type or (key.alg is not None and key.alg != alg):
        return False
    return curve is None or getattr(getattr(key.key.key, "curve", None), "name", None) == curve
