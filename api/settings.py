"""What the request path reads: the database it connects to, the pool and the timeouts.

Environment variables (and a `.env` file if present). What only operations read (where to listen,
how many workers, the embedded server) is api/ops/settings.py's.
"""

import ipaddress
from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# What AUTH_ALGORITHMS may name: asymmetric signatures only. `none` and the HS* family are refused: a
# shared secret would let anyone who can verify a token also make one.
SIGNATURE_ALGORITHMS = ("RS256", "ES256", "PS256", "EdDSA")


def postgres_url(url: str | None) -> str | None:
    """A PostgreSQL URL, or None for an empty or missing one."""
    if not url:
        return None  # DATABASE_URL= (empty) means unset, as in most shells' habits
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError("must start with postgresql:// (or postgres://)")
    return url


def is_loopback(host: str) -> bool:
    """`host` names this machine only: localhost, 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def key_url(url: str | None) -> str | None:
    """An https URL, or http to this machine only (a sidecar, a test): keys are never fetched in the clear."""
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.hostname or parts.scheme not in ("https", "http"):
        raise ValueError("must be an https:// URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError("must be https://; http:// only to a loopback address")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold a user or password: the keys are public, and the URL is logged")
    return url  # as given: a token's iss must equal AUTH_ISSUER exactly, its trailing slash too


def names(value: str) -> tuple[str, ...]:
    """A comma-separated list, as AUTH_ALGORITHMS and AUTH_TOKEN_TYPES are written."""
    return tuple(name.strip() for name in value.split(",") if name.strip())


class Settings(BaseSettings):
    """The app's knobs; docs/operating.md's configuration table lists the same names."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL as the app role, which the API connects as; unset starts the embedded server.",
    )
    database_replica_urls: str | None = Field(
        default=None,
        description="Comma-separated URLs of hot standbys of DATABASE_URL's primary, as the app role: reads go to "
        "them; unset: everything goes to DATABASE_URL.",
    )
    replica_wait: float = Field(
        default=0.02,
        ge=0,
        description="Seconds a read with a Consistency-Token waits for a standby to replay that far before it goes "
        "to the primary.",
    )
    replica_max_lag: float = Field(
        default=1.0,
        gt=0,
        le=60,  # each worker keeps the primary's positions of the last minute to measure lags with
        description="Seconds a standby may be behind the primary and still answer reads.",
    )
    pool_min_size: int = Field(default=2, ge=0, description="Connections the pool keeps open.")
    pool_max_size: int = Field(default=10, ge=1, description="Most connections the pool opens.")
    pool_acquire_timeout: float = Field(
        default=2.0, gt=0, description="Seconds a request waits for a free connection before a 503."
    )
    pool_close_timeout: float = Field(
        default=10.0, gt=0, description="Seconds shutdown waits for busy connections before closing them."
    )
    command_timeout: float = Field(default=5.0, gt=0, description="Seconds one query may take.")
    statement_cache_size: int = Field(
        default=100, ge=0, description="Prepared statements cached per connection (0 for PgBouncer)."
    )
    ready_timeout: float = Field(default=1.0, gt=0, description="Seconds /ready waits for SELECT 1.")
    require_if_match: bool = Field(
        default=False, description="Answer 428 to a PATCH or DELETE without If-Match, instead of writing."
    )
    coalesce_reads: bool = Field(
        default=True,
        description="Answer the get-ones (and the lookups by email) waiting at once with one statement.",
    )
    coalesce_creates: bool = Field(
        default=True, description="Insert the plain creates (no Idempotency-Key) waiting at once with one statement."
    )
    gc_young_threshold: int = Field(
        default=50_000,
        ge=0,
        description="As the app starts serving, what was made so far is frozen out of garbage collection and the young "
        "generation is collected every this many net allocations (CPython 3.11-3.13's default: 700); 0 keeps "
        "Python's.",
    )
    metrics: bool = Field(default=True, description="Serve GET /metrics (Prometheus) and count every request.")
    auth_issuer: str | None = Field(
        default=None, description="The identity provider's issuer URL; set, every /users request needs a token."
    )
    auth_audience: str | None = Field(default=None, description="This service's identifier, as tokens' aud.")
    auth_jwks_url: str | None = Field(default=None, description="The issuer's keys; unset: from its discovery.")
    auth_algorithms: str = Field(default="RS256,ES256", description="Signature algorithms tokens may use.")
    auth_token_types: str = Field(default="at+jwt", description="JWT typ values an access token may have.")

    _database_url = field_validator("database_url")(postgres_url)

    @field_validator("database_replica_urls")
    @classmethod
    def _postgres_urls(cls, value: str | None) -> str | None:
        for url in names(value or ""):
            postgres_url(url)
        return value or None

    _auth_issuer = field_validator("auth_issuer", "auth_jwks_url")(key_url)

    @field_validator("auth_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: str) -> str:
        refused = [name for name in names(value) if name not in SIGNATURE_ALGORITHMS]
        if refused or not names(value):
            raise ValueError(f"{', '.join(refused) or 'nothing'}: name some of {', '.join(SIGNATURE_ALGORITHMS)}")
        return value

    @field_validator("auth_token_types")
    @classmethod
    def _some_type(cls, value: str) -> str:
        if not names(value):
            raise ValueError("name at least one JWT typ, such as at+jwt")
        return value

    @model_validator(mode="after")
    def _auth_complete(self) -> Self:
        if self.auth_issuer is not None and not self.auth_audience:
            raise ValueError("AUTH_ISSUER is set without AUTH_AUDIENCE: set this service's identifier too")
        if self.auth_issuer is None:
            given = [name for name in ("auth_audience", "auth_jwks_url") if getattr(self, name)]
            given += [name for name in ("auth_algorithms", "auth_token_types") if name in self.model_fields_set]
            if given:
                raise ValueError(f"{given[0].upper()} is set without AUTH_ISSUER, which turns authentication on")
        return self

    @property
    def replica_urls(self) -> tuple[str, ...]:
        return names(self.database_replica_urls or "")

    @property
    def algorithms(self) -> tuple[str, ...]:
        return names(self.auth_algorithms)

    @property
    def token_types(self) -> tuple[str, ...]:
        return names(self.auth_token_types)
