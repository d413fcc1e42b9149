"""The app's settings come from the environment, with checked values."""

import pytest
from pydantic import ValidationError

from api.ops.cli import configuration_problems
from api.settings import Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings(_env_file=None)

    assert settings.database_url is None
    assert (settings.pool_min_size, settings.pool_max_size, settings.pool_acquire_timeout) == (2, 10, 2.0)


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/app")
    monkeypatch.setenv("POOL_MAX_SIZE", "25")

    settings = Settings(_env_file=None)

    assert settings.database_url == "postgresql://u:p@db:5432/app"
    assert settings.pool_max_size == 25


def test_an_empty_database_url_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "")

    assert Settings(_env_file=None).database_url is None


@pytest.mark.parametrize(
    "bad", [{"database_url": "mysql://u@h/d"}, {"pool_acquire_timeout": 0}, {"pool_max_size": 0}], ids=str
)
def test_bad_values_are_refused_by_name(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match=next(iter(bad))):
        Settings(_env_file=None, **bad)  # type: ignore[arg-type]


def test_the_standbys_read_as_a_list() -> None:
    given = " postgresql://app@replica-1/users_api, postgres://app@replica-2:5433/users_api ,"
    settings = Settings(_env_file=None, database_url="postgresql://app@db/users_api", database_replica_urls=given)

    assert settings.replica_urls == ("postgresql://app@replica-1/users_api", "postgres://app@replica-2:5433/users_api")
    assert Settings(_env_file=None, database_replica_urls="").replica_urls == ()


def test_what_only_operations_read_is_not_the_apps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "not a port")  # ignored here: the process that serves the app reads it

    assert not {"host", "port", "workers", "migrate_on_serve", "embedded_pgdata"} & set(Settings.model_fields)
    assert Settings(_env_file=None).pool_max_size == 10


@pytest.mark.parametrize(
    "url",
    ["https://issuer.example/realms/x", "http://127.0.0.1:8080/realms/x", "http://[::1]:9/x", "http://localhost/x"],
)
def test_keys_come_over_https_or_from_this_machine(url: str) -> None:
    assert Settings(_env_file=None, auth_issuer=url, auth_audience="users-api").auth_issuer == url


@pytest.mark.parametrize("url", ["http://issuer.example", "http://10.0.0.1/x", "ftp://issuer.example", "issuer"])
def test_keys_over_plain_http_from_elsewhere_are_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="auth_issuer"):
        Settings(_env_file=None, auth_issuer=url, auth_audience="users-api")


@pytest.mark.parametrize("setting", ["auth_issuer", "auth_jwks_url"])
def test_a_key_url_holding_a_password_is_refused_as_the_logs_would_show_it(setting: str) -> None:
    urls = {"auth_issuer": "https://issuer.example", setting: "https://ops:hunter2@issuer.example/keys"}

    with pytest.raises(ValidationError, match=f"{setting}(.|\n)*must not hold a user or password") as refused:
        Settings(_env_file=None, auth_audience="users-api", **urls)  # type: ignore[arg-type]
    assert "hunter2" not in configuration_problems(refused.value), "the line serve prints"


@pytest.mark.parametrize("algorithms", ["HS256", "RS256,none", "RS256,HS512", "", "RS384"])
def test_only_asymmetric_signatures_may_be_named(algorithms: str) -> None:
    with pytest.raises(ValidationError, match="auth_algorithms"):
        Settings(_env_file=None, auth_issuer="https://i.example", auth_audience="a", auth_algorithms=algorithms)


def test_the_authentication_settings_read_as_lists() -> None:
    settings = Settings(
        _env_file=None,
        auth_issuer="https://i.example/",
        auth_audience="a",
        auth_algorithms="RS256, PS256,EdDSA",
        auth_token_types="at+jwt,JWT",
    )

    assert settings.algorithms == ("RS256", "PS256", "EdDSA")
    assert settings.token_types == ("at+jwt", "JWT")
    assert settings.auth_issuer == "https://i.example/", "as given: a token's iss must equal it exactly"
