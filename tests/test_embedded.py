"""The embedded server's files: the wheel's binaries, and where data goes when root's server user is kept out."""

import pwd
import sys
from pathlib import Path

import pytest

from api.ops import embedded
from api.ops.embedded import EmbeddedError


def test_without_the_wheel_the_message_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "WHEEL_PACKAGE", "no_such_wheel_installed")

    with pytest.raises(EmbeddedError, match=r"pip install 'users-api\[embedded\]'.*or set DATABASE_URL"):
        embedded.find_binaries()


def test_the_binaries_are_found_without_importing_the_wheel() -> None:
    bin_dir = embedded.find_binaries()

    assert (bin_dir / "pg_ctl").is_file()
    assert embedded.WHEEL_PACKAGE not in sys.modules


STRANGER = pwd.struct_passwd(("stranger", "x", 64999, 64999, "", "/", "/bin/false"))


def test_data_the_server_user_cannot_reach_is_kept_in_a_system_folder_named_after_the_checkout(private: Path) -> None:
    first, second = private / "project" / ".pgdata", private / "other" / "project" / ".pgdata"

    found = embedded.locate(first, STRANGER)

    assert found.parent == embedded.SYSTEM_HOME / "clusters"
    assert found.name.startswith("project-pgdata-")
    assert embedded.locate(first, STRANGER) == found, "the same folder at every start"
    assert embedded.locate(second, STRANGER) not in (found, second), "two checkouts never share a cluster"
    assert private.stat().st_mode & 0o777 == 0o700, "permissions are left as they were"
    assert not (private / "project").exists()


def test_data_the_server_user_can_reach_stays_where_it_was_asked_for(scratch_pgdata: Path) -> None:
    assert embedded.locate(scratch_pgdata, STRANGER) == scratch_pgdata


def test_a_cluster_already_in_a_private_folder_is_refused_and_left_as_it_is(private: Path) -> None:
    cluster = private / "project" / ".pgdata" / "cluster"
    cluster.mkdir(parents=True)
    (cluster / "PG_VERSION").write_text("18\n")

    with pytest.raises(EmbeddedError, match=f"cannot enter {private}, and .* holds a cluster: .*mv "):
        embedded.locate(cluster.parent, STRANGER)
    assert (cluster / "PG_VERSION").read_text() == "18\n"


def test_an_existing_data_folder_the_server_user_cannot_enter_is_not_opened_up(private: Path) -> None:
    found = embedded.locate(private, STRANGER)  # EMBEDDED_PGDATA=$(mktemp -d)

    assert found.parent == embedded.SYSTEM_HOME / "clusters"
    assert private.stat().st_mode & 0o777 == 0o700


def test_a_pointer_to_the_data_is_followed_only_into_the_system_folder(private: Path) -> None:
    (private / embedded.KEPT_IN).write_text("/etc\n")

    with pytest.raises(EmbeddedError, match="names /etc, which is not a folder of"):
        embedded.locate(private, STRANGER)
