"""The service's settings: the app's, and what only operations read, from the environment, checked."""

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.ops.settings import ServiceSettings
from api.settings import Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("OWNER_DATABASE_URL", raising=False)
    settings = ServiceSettings(_env_file=None)

    assert settings.database_url is None and settings.owner_database_url is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/app")
    monkeypatch.setenv("POOL_MAX_SIZE", "25")
    monkeypatch.setenv("PORT", "9000")

    settings = ServiceSettings(_env_file=None)

    assert settings.database_url == "postgresql://u:p@db:5432/app"
    assert (settings.pool_max_size, settings.port) == (25, 9000)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://u@h/d"),
        ("OWNER_DATABASE_URL", "mysql://u@h/d"),
        ("PORT", "70000"),
        ("POOL_ACQUIRE_TIMEOUT", "0"),
        ("WORKERS", "0"),
        ("DATABASE_REPLICA_URLS", "postgresql://app@replica/users_api,mysql://u@h/d"),
        ("REPLICA_MAX_LAG", "0"),
        ("EMBEDDED_REPLICA_DELAY", "300 ms"),
        ("EMBEDDED_REPLICA_DELAY", "-1s"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db/users_api")
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError, match=name.lower()):
        ServiceSettings(_env_file=None)


def test_an_owner_url_without_an_app_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("OWNER_DATABASE_URL", "postgresql://owner@db/users_api")

    with pytest.raises(ValidationError, match="OWNER_DATABASE_URL is set without DATABASE_URL"):
        ServiceSettings(_env_file=None)


@pytest.mark.parametrize(
    ("given", "refusal"),
    [
        ({"EMBEDDED_REPLICAS": "1", "DATABASE_URL": "postgresql://app@db/users_api"}, "EMBEDDED_REPLICAS is set with"),
        ({"DATABASE_REPLICA_URLS": "postgresql://app@replica/users_api"}, "DATABASE_REPLICA_URLS is set without"),
        ({"EMBEDDED_REPLICAS": "1", "EMBEDDED_REPLICA_DELAY": "2s"}, "not below REPLICA_MAX_LAG=1s"),
        ({"EMBEDDED_REPLICAS": "1", "EMBEDDED_REPLICA_DELAY": "1000"}, "not below REPLICA_MAX_LAG=1s"),
    ],
)
def test_standbys_are_either_given_or_embedded(
    monkeypatch: pytest.MonkeyPatch, given: dict[str, str], refusal: str
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for name, value in given.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError, match=refusal):
        ServiceSettings(_env_file=None)


@pytest.mark.parametrize(("delay", "applied"), [("0", None), ("0ms", None), ("300ms", "300ms"), ("2s", "2s")])
def test_an_embedded_replica_delay_of_zero_is_none(delay: str, applied: str | None) -> None:
    assert ServiceSettings(_env_file=None, embedded_replica_delay=delay).replica_apply_delay == applied


def test_a_delay_past_the_lag_allowed_is_taken_with_a_larger_lag() -> None:
    given = ServiceSettings(_env_file=None, embedded_replicas=1, embedded_replica_delay="2s", replica_max_lag=5)

    assert given.replica_delay_seconds == 2.0


def test_the_service_reads_every_setting_of_the_app() -> None:
    assert set(Settings.model_fields) < set(ServiceSettings.model_fields)


ROOT = Path(__file__).resolve().parent.parent


def documented_defaults(path: Path) -> dict[str, str]:
    """NAME: default, from a table's rows: `| `NAME` | `default` |`, or several, `| `A`, `B` | `a`, `b` |`."""
    found: dict[str, str] = {}
    for names, defaults in re.findall(r"^\| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \| ([^|]*?) \|", path.read_text(), re.M):
        keys = [name.strip("`") for name in names.split(", ")]
        values = defaults.split(",") if len(keys) > 1 else [defaults]  # one default may hold commas itself
        found |= dict(zip(keys, (value.strip().strip("`") for value in values), strict=True))
    return found


def default_of(name: str) -> str:
    field = ServiceSettings.model_fields[name.lower()]
    return "unset" if field.default is None else str(field.default)


def test_the_operators_guide_documents_every_setting_with_its_default() -> None:
    rows = documented_defaults(ROOT / "docs" / "operating.md")

    for name in ServiceSettings.model_fields:
        assert rows.get(name.upper()) == default_of(name), f"docs/operating.md's row for {name.upper()}"


def test_the_readme_gives_the_settings_it_names_with_their_defaults() -> None:
    rows = documented_defaults(ROOT / "README.md")

    assert rows, "the README's table of settings"
    for name, default in rows.items():
        assert default == default_of(name), f"the README's row for {name}"
