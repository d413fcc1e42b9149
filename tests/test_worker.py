"""A worker's garbage collector leaves alone what the app's start made, and runs rarely (api/worker.py).

That a worker stops with its parent is tests/test_faults.py's: it takes processes and a kill -9.
"""

import gc

import pytest

from api.settings import Settings
from api.worker import collects_rarely
from tests.helpers import ClientFactory

DEFAULT_THRESHOLD = Settings.model_fields["gc_young_threshold"].default


def test_while_the_block_runs_the_start_is_frozen_and_the_young_generation_collected_rarely() -> None:
    before = gc.get_threshold()

    with collects_rarely(50_000):
        assert gc.get_threshold() == (50_000, *before[1:])
        assert gc.get_freeze_count() > 0

    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_blocks_side_by_side_give_python_its_settings_back_when_the_last_ends() -> None:
    before = gc.get_threshold()

    with collects_rarely(50_000):
        with collects_rarely(50_000):
            pass
        assert gc.get_threshold()[0] == 50_000, "the first block still runs"

    assert gc.get_threshold() == before


def test_zero_keeps_pythons_own_settings() -> None:
    before = gc.get_threshold()

    with collects_rarely(0):
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0


@pytest.mark.anyio
async def test_the_app_collects_rarely_while_it_serves(client_factory: ClientFactory) -> None:
    before = gc.get_threshold()

    async with client_factory() as client:
        assert (await client.get("/users/1")).status_code == 404
        assert gc.get_threshold()[0] == DEFAULT_THRESHOLD
        assert gc.get_freeze_count() > 0

    assert gc.get_threshold() == before
