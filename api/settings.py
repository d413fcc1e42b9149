"""What the request path reads: the database it connects to, the pool and the timeouts.

Environment variables (and a `.env` file if present). What only operations read (where to listen,
how many workers, the embedded server) is api/ops/settings.py's.
"""

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def postgres_url(url: str | None) -> str | None:
    """A PostgreSQL URL, or None for an empty or missing one."""
    if not url:
        return None  # DATABASE_URL= (empty) means unset, as in most shells' habits
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError("must start with postgresql:// (or postgres://)")
    return url


class Settings(BaseSettings):
    """The app's knobs; docs/operating.md's configuration table lists the same names."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL as the app role, which the API connects as; unset starts the embedded server.",
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
    metrics: bool = Field(default=True, description="Serve GET /metrics (Prometheus) and count every request.")

    _database_url = field_validator("database_url")(postgres_url)
