"""Configuration, read from environment variables (and a `.env` file if present)."""

from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; the README's configuration table lists the same names."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL as the app role, which the API connects as; unset starts the embedded server.",
    )
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

    embedded_pgdata: Path = Field(
        default=Path(".pgdata"), description="Folder of the embedded server's data, log and password."
    )
    embedded_pgport: int = Field(
        default=54329, ge=1, le=65535, description="TCP port of the embedded server (127.0.0.1 only)."
    )

    @field_validator("database_url", "owner_database_url")
    @classmethod
    def _postgres_scheme(cls, url: str | None) -> str | None:
        if not url:
            return None  # DATABASE_URL= (empty) means unset, as in most shells' habits
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// (or postgres://)")
        return url

    @model_validator(mode="after")
    def _owner_with_app(self) -> "Settings":
        if self.owner_database_url is not None and self.database_url is None:
            raise ValueError(
                "OWNER_DATABASE_URL is set without DATABASE_URL: set both, or neither for the embedded server"
            )
        return self
