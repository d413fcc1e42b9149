"""What operations read besides the app's settings: where to listen, workers, migrations, the embedded server."""

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from api.settings import Settings, is_loopback, postgres_url


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
    allow_anonymous: bool = Field(
        default=False, description="Serve with nothing authenticated on a HOST other than loopback."
    )

    _owner_database_url = field_validator("owner_database_url")(postgres_url)

    @model_validator(mode="after")
    def _owner_with_app(self) -> "ServiceSettings":
        if self.owner_database_url is not None and self.database_url is None:
            raise ValueError(
                "OWNER_DATABASE_URL is set without DATABASE_URL: set both, or neither for the embedded server"
            )
        if self.allow_anonymous and self.auth_issuer is not None:
            raise ValueError("ALLOW_ANONYMOUS is true and AUTH_ISSUER is set: one turns off what the other turns on")
        return self

    def anonymous_refusal(self) -> str | None:
        """Why `serve` must not start: nothing authenticated, on an address others may reach; None if it may."""
        if self.auth_issuer is not None or self.allow_anonymous or is_loopback(self.host):
            return None
        return (
            f"HOST={self.host} may be reached from other machines and nothing is authenticated: "
            "set AUTH_ISSUER (and AUTH_AUDIENCE), or ALLOW_ANONYMOUS=true to serve anyone who reaches it"
        )
