"""Tests for studybuddy.torlaunch: finding or launching the Tor of a run, and keeping one for many runs."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from studybuddy import torlaunch
from studybuddy.sessions import ProxyEndpoint
from studybuddy.tor import TorController
from studybuddy.torlaunch import EmbeddedTor, TorKeeper, TorSetup, default_data_dir
from tests.bed.tornet import TorNetwork
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


@pytest.mark.network
def test_two_concurrent_embedded_tors_both_bootstrap_and_the_first_keeps_the_cache(
    tor_network: TorNetwork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    torrc = tmp_path / "bed.torrc"  # the client tors join the test bed's private network
    torrc.write_text("\n".join(tor_network.relay_torrc_lines()) + "\n")
    start = threading.Barrier(2)

    def launch(_: int) -> EmbeddedTor | BaseException:
        start.wait()  # as two runs started at once
        try:
            return EmbeddedTor.launch(extra_torrc=torrc, timeout=120)
        except BaseException as exc:
            return exc

    with ThreadPoolExecutor(max_workers=2) as pool:
        launched = list(pool.map(launch, range(2)))
    tors = [tor for tor in launched if isinstance(tor, EmbeddedTor)]
    try:
        assert len(tors) == 2, launched
        assert all(tor.controller.bootstrap_progress() == 100 for tor in tors)
        assert {tor.data_dir for tor in tors} == {default_data_dir(), default_data_dir().with_name("tor-2")}
    finally:
        for tor in tors:
            tor.stop()
    later = EmbeddedTor.launch(extra_torrc=torrc, timeout=120)  # alone again: the cached folder
    try:
        assert later.data_dir == default_data_dir()
        assert later.controller.bootstrap_progress() == 100
    finally:
        later.stop()


def test_each_concurrent_run_gets_a_data_folder_of_its_own(tmp_path: Path) -> None:
    base = tmp_path / "cache" / "tor"
    held = [torlaunch._claim_data_dir(base) for _ in range(torlaunch.DATA_DIR_SLOTS)]
    assert [data.path.name for data in held] == ["tor", *(f"tor-{n}" for n in range(2, 9))]
    spare = torlaunch._claim_data_dir(base)  # every numbered folder is in use: a temporary one
    assert spare.temporary and spare.path.parent != base.parent
    assert spare.path.stat().st_mode & 0o777 == 0o700  # tor refuses a folder others can read
    spare.release()
    assert not spare.path.exists()
    held[3].release()
    again = torlaunch._claim_data_dir(base)
    assert again.path.name == "tor-4" and not again.temporary  # the first free one, kept afterwards
    for data in [*held, again]:
        data.release()
    alone = torlaunch._claim_data_dir(base)
    assert alone.path == base  # a run alone takes the cached folder again
    alone.release()
