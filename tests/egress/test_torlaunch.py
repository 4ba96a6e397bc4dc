"""Tests for studybuddy.torlaunch: torrc files, `resolve_tor`, the embedded tor (its data folder, its
ports), and the Tor that `watch` keeps for many runs.

Tests marked `tor` start a real tor with `DisableNetwork 1` (no outside connection); those marked `network`
join the test bed's private Tor network on loopback.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from stem.control import Controller

from studybuddy.egress import torlaunch
from studybuddy.egress.sessions import ProxyEndpoint
from studybuddy.egress.tor import TorUnreachableError
from studybuddy.egress.torlaunch import (
    EmbeddedTor,
    TorKeeper,
    TorSetup,
    default_data_dir,
    merge_torrc,
    read_torrc,
    resolve_tor,
)
from studybuddy.errors import TorError
from tests.bed.tornet import TorNetwork
from tests.egress.test_tor import NOWHERE, SOCKS, FakeController, make_tor


def test_a_kept_tor_is_opened_once_and_again_only_when_it_is_gone() -> None:
    opened: list[FakeController] = []

    def open_tor() -> TorSetup:
        fake = FakeController()
        opened.append(fake)
        return TorSetup(make_tor(fake), SOCKS)

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
        assert all(tor.controller.bootstrap_phase()[0] == 100 for tor in tors)
        assert {tor.data_dir for tor in tors} == {default_data_dir(), default_data_dir().with_name("tor-2")}
    finally:
        for tor in tors:
            tor.stop()
    later = EmbeddedTor.launch(extra_torrc=torrc, timeout=120)  # alone again: the cached folder
    try:
        assert later.data_dir == default_data_dir()
        assert later.controller.bootstrap_phase()[0] == 100
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


# --- torrc files -------------------------------------------------------------------------------------


def test_read_torrc_lists_repeated_keys_and_skips_comments(tmp_path: Path) -> None:
    torrc = tmp_path / "torrc"
    torrc.write_text(
        "# mine\n\nExitNodes {de}  # germany\nLog notice stdout\nLog info file /tmp/x\nStrictNodes\n"
    )
    assert read_torrc(torrc) == {
        "ExitNodes": "{de}",
        "Log": ["notice stdout", "info file /tmp/x"],
        "StrictNodes": "",
    }


def test_merge_torrc_replaces_keys_case_insensitively(tmp_path: Path) -> None:
    torrc = tmp_path / "torrc"
    torrc.write_text("confluxenabled 1\nDisableNetwork 1\n")
    merged = merge_torrc({"ConfluxEnabled": "0", "CookieAuthentication": "1"}, torrc)
    assert merged == {"CookieAuthentication": "1", "confluxenabled": "1", "DisableNetwork": "1"}


def test_merge_torrc_keeps_ports_ours(tmp_path: Path) -> None:
    torrc = tmp_path / "torrc"
    torrc.write_text("SocksPort 9050\n")
    with pytest.raises(TorError, match=r"torrc: leave out SocksPort"):
        merge_torrc({}, torrc)


def test_unreadable_torrc_is_named(tmp_path: Path) -> None:
    with pytest.raises(TorError, match=r"cannot read the Tor config file .*missing"):
        read_torrc(tmp_path / "missing")


def test_default_data_dir_is_in_the_user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert torlaunch.default_data_dir() == tmp_path / "study-buddy" / "tor"


# --- resolve_tor ---------------------------------------------------------------------------------------


def no_tor_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))


def test_resolve_off_is_none() -> None:
    assert resolve_tor("off", socks=SOCKS, control=NOWHERE, password=None, tor_config=None) is None


def test_resolve_system_without_tor_names_the_port() -> None:
    with pytest.raises(TorUnreachableError, match=r"^no Tor control port answers at 127\.0\.0\.1:1$"):
        resolve_tor("system", socks=SOCKS, control=NOWHERE, password=None, tor_config=None)


def test_resolve_auto_without_tor_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_tor_on_path(monkeypatch, tmp_path)
    with pytest.raises(TorError, match=r"answers at 127\.0\.0\.1:1, and tor is not installed: apt-get"):
        resolve_tor("auto", socks=SOCKS, control=NOWHERE, password=None, tor_config=None)


def test_launch_without_tor_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_tor_on_path(monkeypatch, tmp_path)
    with pytest.raises(TorError, match=r"^tor is not installed: apt-get install tor, or use the Docker"):
        EmbeddedTor.launch(data_dir=tmp_path / "data")


def test_resolve_auto_launches_when_nothing_answers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if shutil.which("tor") is None:
        pytest.skip("tor is not installed")
    launched: list[dict[str, Any]] = []
    stand_in = FakeController()

    class StubEmbedded:
        controller = make_tor(stand_in)
        socks = ProxyEndpoint("127.0.0.1", 40000)

        @classmethod
        def launch(cls, **kwargs: Any) -> StubEmbedded:
            launched.append(kwargs)
            return cls()

        def stop(self) -> None:
            self.controller.close()

    monkeypatch.setattr(torlaunch, "EmbeddedTor", StubEmbedded)
    torrc, progress = tmp_path / "torrc", print
    setup = resolve_tor(
        "auto", socks=SOCKS, control=NOWHERE, password=None, tor_config=torrc, on_progress=progress
    )
    assert setup is not None
    with setup:
        assert setup.socks == ProxyEndpoint("127.0.0.1", 40000)
        assert launched == [{"extra_torrc": torrc, "on_progress": progress}]
    assert stand_in.closed


@pytest.mark.tor
def test_resolve_auto_uses_a_tor_that_answers(start_tor: Callable[..., tuple[str, int]]) -> None:
    setup = resolve_tor("auto", socks=SOCKS, control=start_tor(), password=None, tor_config=None)
    assert setup is not None
    with setup:
        assert setup.embedded is None
        assert setup.socks == SOCKS


# --- the embedded tor ----------------------------------------------------------------------------------


@pytest.fixture
def offline_torrc(tmp_path: Path) -> Path:
    if shutil.which("tor") is None:
        pytest.skip("tor is not installed")
    torrc = tmp_path / "offline.torrc"
    torrc.write_text("DisableNetwork 1\n")
    return torrc


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.tor
def test_embedded_tor_starts_and_stops(offline_torrc: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "cache" / "tor"
    tor = EmbeddedTor.launch(data_dir=data_dir, extra_torrc=offline_torrc, wait_for_bootstrap=False)
    pid = tor.process.pid
    assert is_running(pid)
    assert data_dir.stat().st_mode & 0o777 == 0o700
    assert tor.socks.host == "127.0.0.1" and tor.socks.port not in (0, tor.control[1])
    assert tor.controller.bootstrap_phase()[0] == 0
    observer = Controller.from_port(*tor.control)
    observer.authenticate()  # cookie authentication
    assert observer.get_conf("ConfluxEnabled") == "0"
    assert "KeepAliveIsolateSOCKSAuth" in observer.get_conf("SocksPort")
    observer.close()
    tor.stop()
    tor.stop()
    assert not is_running(pid)


@pytest.mark.tor
def test_embedded_tor_exits_when_its_owner_disconnects(offline_torrc: Path, tmp_path: Path) -> None:
    tor = EmbeddedTor.launch(data_dir=tmp_path / "data", extra_torrc=offline_torrc, wait_for_bootstrap=False)
    tor.controller.close()  # what happens when this Python process dies
    for _ in range(100):
        if tor.process.poll() is not None:
            break
        time.sleep(0.05)
    assert tor.process.poll() is not None
    tor.stop()


@pytest.mark.tor
def test_embedded_bootstrap_timeout_reports_progress_and_kills_tor(
    offline_torrc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ended: list[subprocess.Popen[bytes]] = []
    real_end = torlaunch._end
    monkeypatch.setattr(torlaunch, "_end", lambda process: (ended.append(process), real_end(process)))
    progress: list[tuple[int, str]] = []
    with pytest.raises(
        TorError, match=r"^tor did not finish bootstrapping within 1 s \(stuck at 0%: Starting\)$"
    ):
        EmbeddedTor.launch(
            data_dir=tmp_path / "data",
            extra_torrc=offline_torrc,
            timeout=1.0,
            on_progress=lambda percent, summary: progress.append((percent, summary)),
        )
    assert progress == [(0, "Starting")]
    assert len(ended) == 1 and ended[0].poll() is not None


@pytest.mark.tor
def test_embedded_tor_that_exits_names_its_complaint(offline_torrc: Path, tmp_path: Path) -> None:
    offline_torrc.write_text("DisableNetwork 1\nNoSuchOption 1\n")
    with pytest.raises(TorError, match=r"^tor could not start: .*NoSuchOption"):
        EmbeddedTor.launch(data_dir=tmp_path / "data", extra_torrc=offline_torrc, wait_for_bootstrap=False)


@pytest.mark.tor
def test_a_port_taken_before_tor_binds_it_is_retried_with_new_ports(
    offline_torrc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_free_ports = torlaunch._free_ports
    asked: list[list[int]] = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()

        def free_ports(count: int) -> list[int]:
            ports = real_free_ports(count)
            if not asked:  # someone else binds the control port between our probe and tor's bind
                ports[1] = taken.getsockname()[1]
            asked.append(ports)
            return ports

        monkeypatch.setattr(torlaunch, "_free_ports", free_ports)
        tor = EmbeddedTor.launch(
            data_dir=tmp_path / "data", extra_torrc=offline_torrc, wait_for_bootstrap=False
        )
        try:
            assert len(asked) == 2
            assert tor.control == ("127.0.0.1", asked[1][1]) and tor.socks.port == asked[1][0]
            assert tor.controller.bootstrap_phase()[0] == 0
        finally:
            tor.stop()


@pytest.mark.tor
def test_a_port_that_stays_taken_is_one_clear_error(
    offline_torrc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        real_free_ports = torlaunch._free_ports
        monkeypatch.setattr(
            torlaunch, "_free_ports", lambda count: [real_free_ports(1)[0], taken.getsockname()[1]]
        )
        with pytest.raises(TorError, match=r"^tor could not start, a port is taken: Could not bind"):
            EmbeddedTor.launch(
                data_dir=tmp_path / "data", extra_torrc=offline_torrc, wait_for_bootstrap=False
            )
