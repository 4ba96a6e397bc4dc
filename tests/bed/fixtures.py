"""Pytest fixtures of the test bed: list ``tests.bed.fixtures`` in the root conftest's ``pytest_plugins``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.bed.hostile import HOSTILE_EXITS, HOSTILE_FIRST_HOST
from tests.bed.lock import bed_lock
from tests.bed.tornet import TOR, TOR_GENCERT, TorNetwork

READY_TIMEOUT_SECONDS = 90.0


def require_tor() -> None:
    """Skip the calling test when Debian's ``tor`` or ``tor-gencert`` is not installed."""
    missing = [tool for tool in (TOR, TOR_GENCERT) if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


@pytest.fixture(scope="session", name="bed_lock")
def bed_lock_fixture() -> Iterator[None]:
    """One test bed per machine at a time (see tests/bed/lock.py)."""
    with bed_lock():
        yield


@pytest.fixture(scope="session")
def tor_network(bed_lock: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TorNetwork]:
    """The private Tor network (4 exits), bootstrapped and with every exit proven usable."""
    require_tor()
    with TorNetwork.start(tmp_path_factory.mktemp("tornet"), exits=4) as network:
        network.wait_ready(timeout=READY_TIMEOUT_SECONDS)
        yield network


@pytest.fixture(scope="session")
def hostile_network(bed_lock: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TorNetwork]:
    """A second private Tor network with 12 exits (names resolving to 127.0.0.101..112), for the hostile
    bed: started only by the tests that ask for it."""
    require_tor()
    workdir = tmp_path_factory.mktemp("hostile-tornet")
    with TorNetwork.start(workdir, exits=HOSTILE_EXITS, first_server_host=HOSTILE_FIRST_HOST) as network:
        network.wait_ready(timeout=READY_TIMEOUT_SECONDS)
        yield network
