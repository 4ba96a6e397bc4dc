"""Tests for studybuddy.torlaunch: finding or launching the Tor of a run, and keeping one for many runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from studybuddy.sessions import ProxyEndpoint
from studybuddy.tor import TorController
from studybuddy.torlaunch import EmbeddedTor, TorKeeper, TorSetup
from tests.test_tor import FakeController

SOCKS = ProxyEndpoint("127.0.0.1", 9050)


def test_a_kept_tor_is_opened_once_and_again_only_when_it_is_gone() -> None:
    opened: list[FakeController] = []

    def open_tor() -> TorSetup:
        fake = FakeController()
        opened.append(fake)
        return TorSetup(TorController(fake), SOCKS)  # type: ignore[arg-type]

    keeper = TorKeeper(open_tor)
    first = keeper.get()
    assert keeper.get() is first and keeper.get() is first
    assert len(opened) == 1
    opened[0].alive = False  # Tor died (or restarted): stem saw its control connection close
    second = keeper.get()
    assert second is not first and len(opened) == 2
    assert opened[0].closed  # the dead one is let go
    assert keeper.get() is second
    keeper.close()
    keeper.close()
    assert opened[1].closed


def test_without_tor_nothing_is_kept() -> None:
    calls: list[None] = []

    def no_tor() -> None:
        calls.append(None)

    keeper = TorKeeper(no_tor)
    assert keeper.get() is None and keeper.get() is None
    assert len(calls) == 2  # --proxy or --tor off: asking costs nothing
    keeper.close()


@pytest.mark.tor
def test_a_kept_embedded_tor_that_exits_is_launched_again(tmp_path: Path) -> None:
    if shutil.which("tor") is None:
        pytest.skip("tor is not installed")
    torrc = tmp_path / "offline.torrc"
    torrc.write_text("DisableNetwork 1\n")
    launched: list[EmbeddedTor] = []

    def launch() -> TorSetup:
        embedded = EmbeddedTor.launch(data_dir=tmp_path / "data", extra_torrc=torrc, wait_for_bootstrap=False)
        launched.append(embedded)
        return TorSetup(embedded.controller, embedded.socks, embedded)

    keeper = TorKeeper(launch)
    try:
        first = keeper.get()
        assert keeper.get() is first
        launched[0].process.kill()  # tor dies
        launched[0].process.wait()
        second = keeper.get()
        assert second is not first and len(launched) == 2
        assert launched[1].process.poll() is None
    finally:
        keeper.close()
    assert all(embedded.process.poll() is not None for embedded in launched)
