"""The query files of sql/, read once at startup and called by name."""

from dataclasses import dataclass, fields
from pathlib import Path

from api.resources import resource_dir


class QueryFileError(RuntimeError):
    """A query file is missing or empty; the message names it."""


@dataclass(frozen=True, slots=True)
class Queries:
    """One attribute per file in sql/, holding that file's text; mypy checks every name a route uses."""

    create_user: str
    create_user_once: str
    create_users: str
    find_idempotency_key: str
    forget_idempotency_key: str
    get_user: str
    get_users: str
    list_users: str
    find_users_by_email: str
    find_users_by_emails: str
    update_user: str
    delete_user: str
    ping: str
    current_wal_lsn: str
    replica_status: str

    @classmethod
    def load(cls, directory: Path | None = None) -> "Queries":
        """Read `<name>.sql` for every attribute; fail on the first missing or empty file."""
        directory = directory or resource_dir("sql")
        texts: dict[str, str] = {}
        for field in fields(cls):
            path = directory / f"{field.name}.sql"
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise QueryFileError(f"query file {path} is missing") from None
            if not _statement(text):
                raise QueryFileError(f"query file {path} holds no SQL statement")
            texts[field.name] = text
        return cls(**texts)


def _statement(text: str) -> str:
    """The text without its comment lines and blank space."""
    lines = (line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return "\n".join(lines).strip()


# Read at import, which is at startup: a missing or empty file stops the service before it serves.
SQL = Queries.load()
