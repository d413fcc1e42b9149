"""What operations read besides the app's settings: where to listen, workers, migrations, the embedded server."""

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from api.ops.standby import APPLY_DELAY
from api.settings import Settings, is_loopback, postgres_url

# recovery_min_apply_delay's units, in seconds; a number alone is milliseconds, as PostgreSQL reads it.
DELAY_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}


class ServiceSettings(Settings):
    """`users-api`'s knobs: the app's, and those of the process that serves it."""

    owner_database_url: str | None = Field(
        default=None,
        description="The same database as the owner role, which runs the migrations; unset: DATABASE_URL's role.",
    )
    migrate_on_serve: bool = Field(
        default=True,
        description="Apply pending migrations before serving; false when a separate `users-api migrate` does.",
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port the HTTP server listens on.")
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes.")
    log_level: str = Field(default="info", description="Log level of users-api and uvicorn.")
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as text, or as one JSON object each."
    )
    embedded_pgdata: Path = Field(
        default=Path(".pgdata"), description="Folder of the embedded server's data, log and password."
    )
    embedded_pgport: int = Field(
        default=54329, ge=1, le=65535, description="TCP port of the embedded server (127.0.0.1 only)."
    )
    embedded_replicas: int = Field(
        default=0,
        ge=0,
        le=8,
        description="Hot standbys of the embedded server to start and read from (DATABASE_REPLICA_URLS is set to "
        "them); their files are in EMBEDDED_PGDATA/replica-N.",
    )
    embedded_replica_delay: str = Field(
        default="0",
        description="How much later the embedded standbys apply the primary's changes (300ms, 2s): reads without a "
        "Consistency-Token are that stale.",
    )
    allow_anonymous: bool = Field(
        default=False, description="Serve with nothing authenticated on a HOST other than loopback."
    )

    _owner_database_url = field_validator("owner_database_url")(postgres_url)

    @field_validator("embedded_replica_delay")
    @classmethod
    def _a_delay(cls, value: str) -> str:
        if not APPLY_DELAY.fullmatch(value):
            raise ValueError(f"a number and a unit (us, ms, s, min, h), such as 300ms, not {value!r}")
        return value

    @model_validator(mode="after")
    def _owner_with_app(self) -> "ServiceSettings":
        if self.owner_database_url is not None and self.database_url is None:
            raise ValueError(
                "OWNER_DATABASE_URL is set without DATABASE_URL: set both, or neither for the embedded server"
            )
        if self.embedded_replicas and self.database_url is not None:
            raise ValueError("EMBEDDED_REPLICAS is set with DATABASE_URL: standbys of a server you run are "
                             "DATABASE_REPLICA_URLS")  # fmt: skip
        if self.database_replica_urls is not None and self.database_url is None:
            raise ValueError("DATABASE_REPLICA_URLS is set without DATABASE_URL: the embedded server's standbys "
                             "are EMBEDDED_REPLICAS")  # fmt: skip
        if self.embedded_replicas and self.replica_delay_seconds >= self.replica_max_lag:
            raise ValueError(
                f"EMBEDDED_REPLICA_DELAY={self.embedded_replica_delay} is not below REPLICA_MAX_LAG="
                f"{self.replica_max_lag:g}s: the standbys would be too far behind to take reads; raise REPLICA_MAX_LAG"
            )
        if self.allow_anonymous and self.auth_issuer is not None:
            raise ValueError("ALLOW_ANONYMOUS is true and AUTH_ISSUER is set: one turns off what the other turns on")
        return self

    @property
    def replica_delay_seconds(self) -> float:
        """EMBEDDED_REPLICA_DELAY in seconds."""
        found = APPLY_DELAY.fullmatch(self.embedded_replica_delay)
        if found is None:
            return 0.0
        return int(found.group(1)) * DELAY_UNITS[found.group(2) or "ms"]

    @property
    def replica_apply_delay(self) -> str | None:
        """EMBEDDED_REPLICA_DELAY as recovery_min_apply_delay; None for no delay."""
        return None if self.replica_delay_seconds == 0 else self.embedded_replica_delay

    def anonymous_refusal(self) -> str | None:
        """Why `serve` must not start: nothing authenticated, on an address others may reach; None if it may."""
        if self.auth_issuer is not None or self.allow_anonymous or is_loopback(self.host):
            return None
        return (
            f"HOST={self.host} may be reached from other machines and nothing is authenticated: "
            "set AUTH_ISSUER (and AUTH_AUDIENCE), or ALLOW_ANONYMOUS=true to serve anyone who reaches it"
        )
