"""Tests for studybuddy.tor and studybuddy.torlaunch.

Unit tests replay recorded CIRC/STREAM event lines through a fake stem controller. Tests marked
`tor` start a real tor with `DisableNetwork 1` on free loopback ports: it makes no outside connection.
"""

from __future__ import annotations

import http.server
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import stem
from stem.control import Controller, EventType

from studybuddy import torlaunch
from studybuddy.errors import TorError
from studybuddy.sessions import ProxyEndpoint
from studybuddy.tor import ExitRelay, TorController, TorUnreachableError
from studybuddy.torexclusions import MARKER, ExitExclusions, registry_path
from studybuddy.torlaunch import EmbeddedTor, TorSetup, merge_torrc, read_torrc, resolve_tor
from tests.torevents import EXIT_1, EXIT_2, OTHER, USER, circ, stream

PASSWORD = "secret-pw"
HASHED_PASSWORD = "16:AB1ED063B746346B6070693D3948415965E0546B600A0B12D3C00D6047"  # tor --hash-password

# --- TorController against a fake stem controller ---------------------------------------------------


class Relay:
    def __init__(self, address: str) -> None:
        self.address = address


class FakeController:
    """The slice of `stem.control.Controller` that TorController uses."""

    def __init__(self, excluded: str | None = None) -> None:
        self.conf: dict[str, str | None] = {"ExcludeExitNodes": excluded}
        self.set_calls: list[tuple[str, str]] = []
        self.listeners: dict[Any, Callable[[Any], None]] = {}
        self.closed_circuits: list[str] = []
        self.gone_circuits: set[str] = set()
        self.status_lookups: list[str] = []
        self.signals: list[Any] = []
        self.closed = False

    def get_conf(self, key: str, default: Any) -> Any:
        return self.conf.get(key) or default

    def set_conf(self, key: str, value: str) -> None:
        self.set_calls.append((key, value))
        self.conf[key] = value

    def add_event_listener(self, listener: Callable[[Any], None], event_type: Any) -> None:
        self.listeners[event_type] = listener

    def get_circuits(self, default: Any = None) -> list[Any]:
        return [circ("3", "BUILT", EXIT_2, "early")]

    def get_network_status(self, fingerprint: str, default: Any) -> Any:
        self.status_lookups.append(fingerprint)
        return {EXIT_1: Relay("198.51.100.1"), EXIT_2: Relay("198.51.100.2")}.get(fingerprint, default)

    def close_circuit(self, circuit_id: str) -> None:
        if circuit_id in self.gone_circuits:
            raise stem.InvalidArguments("552", f"Unknown circuit {circuit_id}", [circuit_id])
        self.closed_circuits.append(circuit_id)

    def get_listeners(self, listener_type: Any, default: Any) -> list[tuple[str, str]]:
        return [("127.0.0.1", "9150"), ("127.0.0.1", "9250")]

    def signal(self, signal: Any) -> None:
        self.signals.append(signal)

    def get_info(self, key: str) -> str:
        assert key == "status/bootstrap-phase"
        return 'NOTICE BOOTSTRAP PROGRESS=75 TAG=enough_dirinfo SUMMARY="Loaded \\"enough\\" directory info"'

    def close(self) -> None:
        self.closed = True

    def feed(self, *events: Any) -> None:
        for item in events:
            self.listeners[EventType.STREAM if item.type == "STREAM" else EventType.CIRC](item)


@pytest.fixture
def fake() -> FakeController:
    return FakeController(excluded="{us}")


def make_tor(fake: FakeController, clock: Callable[[], float] = time.monotonic) -> TorController:
    return TorController(fake, clock=clock)  # type: ignore[arg-type]


def test_exit_for_reads_the_exit_from_events_and_caches_addresses(fake: FakeController) -> None:
    tor = make_tor(fake)
    assert tor.exit_for(USER) is None
    fake.feed(circ("5", "BUILT"), stream("12", "SUCCEEDED", "5"))
    relay = tor.exit_for(USER)
    assert relay == ExitRelay(EXIT_1, "exitone", "198.51.100.1")
    assert relay.label == "exitone (198.51.100.1)"
    tor.exit_for(USER)
    assert fake.status_lookups == [EXIT_1]  # looked up once


def test_exits_for_lists_all_live_exits_and_knows_circuits_built_before_connecting(
    fake: FakeController,
) -> None:
    tor = make_tor(fake)
    fake.feed(circ("5", "BUILT"), stream("12", "SUCCEEDED", "5"), stream("13", "SUCCEEDED", "3"))
    assert [relay.fingerprint for relay in tor.exits_for(USER)] == [EXIT_2, EXIT_1]
    fake.feed(circ("3", "CLOSED"))
    assert [relay.fingerprint for relay in tor.exits_for(USER)] == [EXIT_1]


def test_exit_label_without_nickname_or_address() -> None:
    assert ExitRelay(EXIT_1, None, None).label == "CCCCCCCC (address unknown)"


def test_close_circuits_of_closes_only_circuits_no_one_else_uses(fake: FakeController) -> None:
    tor = make_tor(fake)
    fake.feed(circ("5", "BUILT"), circ("6", "BUILT"), circ("7", "BUILT"))
    fake.feed(stream("12", "SUCCEEDED", "5"), stream("13", "SUCCEEDED", "6"), stream("14", "SUCCEEDED", "7"))
    fake.feed(stream("15", "SUCCEEDED", "6", OTHER))
    fake.gone_circuits.add("7")
    assert tor.close_circuits_of(USER) == 1
    assert fake.closed_circuits == ["5"]


def test_excluded_exits_go_after_the_marker_and_leave_with_the_run(fake: FakeController) -> None:
    tor = make_tor(fake)
    tor.exclusions.update({EXIT_2.lower(): 60, f"${EXIT_1}": 60})
    assert fake.conf["ExcludeExitNodes"] == f"{{us}},{MARKER},${EXIT_1},${EXIT_2}"
    tor.exclusions.update({EXIT_1: 60, EXIT_2: 60})  # unchanged: no SETCONF
    assert len(fake.set_calls) == 1
    tor.close()
    tor.close()
    assert fake.conf["ExcludeExitNodes"] == "{us}"
    assert fake.closed
    assert len(fake.set_calls) == 2


def test_newnym_is_refused_within_ten_seconds(fake: FakeController) -> None:
    now = [100.0]
    tor = make_tor(fake, clock=lambda: now[0])
    assert tor.newnym()
    now[0] += 9.9
    assert not tor.newnym()
    now[0] += 0.2
    assert tor.newnym()
    assert len(fake.signals) == 2


def test_socks_endpoint_and_bootstrap_phase(fake: FakeController) -> None:
    tor = make_tor(fake)
    assert tor.socks_endpoint() == ProxyEndpoint("127.0.0.1", 9150)
    assert tor.bootstrap_phase() == (75, 'Loaded "enough" directory info')
    assert tor.bootstrap_progress() == 75


def test_circuits_show_exits(fake: FakeController) -> None:
    (info,) = make_tor(fake).circuits()
    assert (info.id, info.status, info.purpose) == ("3", "BUILT", "GENERAL")
    assert info.exit == ExitRelay(EXIT_2, "early", "198.51.100.2")


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

NOWHERE = ("127.0.0.1", 1)  # nothing listens on port 1 on loopback
SOCKS = ProxyEndpoint("127.0.0.1", 9050)


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


# --- a real tor, offline ---------------------------------------------------------------------------------


@pytest.fixture
def start_tor(tmp_path: Path) -> Iterator[Callable[..., tuple[str, int]]]:
    """Start a tor with `DisableNetwork 1` and the given torrc lines; returns its control (host, port)."""
    if shutil.which("tor") is None:
        pytest.skip("tor is not installed")
    processes: list[subprocess.Popen[bytes]] = []

    def start(*lines: str) -> tuple[str, int]:
        data = tmp_path / f"tor{len(processes)}"
        data.mkdir(mode=0o700)
        port_file = data / "control-port"
        torrc = data / "torrc"
        settings = [
            f"DataDirectory {data}",
            "ControlPort 127.0.0.1:auto",
            f"ControlPortWriteToFile {port_file}",
            "DisableNetwork 1",
            f"Log notice file {data / 'log'}",
            *lines,
        ]
        torrc.write_text("\n".join(settings) + "\n")
        processes.append(subprocess.Popen(["tor", "-f", str(torrc)], stdout=subprocess.DEVNULL))
        for _ in range(100):
            if port_file.exists() and port_file.read_text().endswith("\n"):
                first_line = port_file.read_text().splitlines()[0]  # PORT=127.0.0.1:N
                host, port = first_line.removeprefix("PORT=").rsplit(":", 1)
                return host, int(port)
            if processes[-1].poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"tor did not start: {(data / 'log').read_text()}")

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def raw_controller(control: tuple[str, int]) -> Controller:
    controller = Controller.from_port(*control)
    controller.authenticate(password=PASSWORD)
    controller.set_caching(False)  # see what the other controller set
    return controller


@pytest.mark.tor
def test_connect_without_authentication(start_tor: Callable[..., tuple[str, int]]) -> None:
    tor = TorController.connect(control=start_tor())
    assert tor.bootstrap_progress() == 0  # DisableNetwork: it never bootstraps
    tor.close()


@pytest.mark.tor
def test_connect_with_cookie_safecookie(start_tor: Callable[..., tuple[str, int]]) -> None:
    TorController.connect(control=start_tor("CookieAuthentication 1")).close()


@pytest.mark.tor
def test_connect_through_a_control_socket(start_tor: Callable[..., tuple[str, int]], tmp_path: Path) -> None:
    path = tmp_path / "ctl"
    start_tor(f"ControlSocket {path}", "CookieAuthentication 1")
    TorController.connect(control=path).close()


@pytest.mark.tor
def test_connect_with_password(start_tor: Callable[..., tuple[str, int]]) -> None:
    control = start_tor(f"HashedControlPassword {HASHED_PASSWORD}")
    TorController.connect(control=control, password=PASSWORD).close()
    with pytest.raises(TorError) as wrong:
        TorController.connect(control=control, password="not-" + PASSWORD)
    assert str(wrong.value) == "Tor refused the control password (set STUDY_BUDDY_TOR_PASSWORD)"
    with pytest.raises(TorError, match=r"wants a control password \(set STUDY_BUDDY_TOR_PASSWORD\)$"):
        TorController.connect(control=control)


@pytest.mark.tor
def test_passwords_never_reach_the_logs(
    start_tor: Callable[..., tuple[str, int]], caplog: pytest.LogCaptureFixture
) -> None:
    stem_logger = logging.getLogger("stem")
    caplog.set_level(1)
    stem_logger.addHandler(caplog.handler)  # a handler on stem's own logger turns its protocol trace on
    try:
        control = start_tor(f"HashedControlPassword {HASHED_PASSWORD}")
        TorController.connect(control=control, password=PASSWORD).close()
        with pytest.raises(TorError):
            TorController.connect(control=control, password="wrong-" + PASSWORD)
    finally:
        stem_logger.removeHandler(caplog.handler)
    assert "GETCONF" in caplog.text  # stem's log was captured...
    assert PASSWORD not in caplog.text  # ...without the password (stem traces AUTHENTICATE "...")


def test_socks_passwords_in_stem_event_logs_are_hidden(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(1)
    with pytest.raises(TorUnreachableError):
        TorController.connect(control=NOWHERE)
    logging.getLogger("stem").info("Full Event: '%s'", 'STREAM 1 NEW 0 a:1 SOCKS_PASSWORD="s3cr\\"et" X=1')
    logging.getLogger("stem").info("Full Event: SOCKS_PASSWORD=plain X=1")
    assert "s3cr" not in caplog.text and "plain" not in caplog.text
    assert caplog.text.count("SOCKS_PASSWORD=<hidden>") == 2


@pytest.mark.tor
def test_unreadable_cookie_file_is_named(start_tor: Callable[..., tuple[str, int]], tmp_path: Path) -> None:
    cookie = tmp_path / "cookie"
    control = start_tor("CookieAuthentication 1", f"CookieAuthFile {cookie}")
    cookie.unlink()  # root reads any file: a missing one is what stays unreadable
    with pytest.raises(TorError, match=re.escape(f"cannot read Tor's control cookie file {cookie}")):
        TorController.connect(control=control)


def test_nothing_listening(tmp_path: Path) -> None:
    with pytest.raises(TorUnreachableError, match=r"^no Tor control port answers at 127\.0\.0\.1:1$"):
        TorController.connect(control=NOWHERE)
    with pytest.raises(TorUnreachableError, match=r"no Tor control port answers at .*nosocket"):
        TorController.connect(control=tmp_path / "nosocket")


class QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_an_http_server_is_not_a_control_port() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with pytest.raises(TorError, match=re.escape(f"127.0.0.1:{port} is not a Tor control port")):
            TorController.connect(control=("127.0.0.1", port))
    finally:
        server.shutdown()
        server.server_close()


EXCLUDING_RUN = """
import sys, time
from studybuddy.tor import TorController
host, port, fingerprint, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
tor = TorController.connect(control=(host, port), password=password)
tor.exclusions.update({fingerprint: 600})
print("excluding", flush=True)
sys.stdin.readline()  # until told to finish (or killed)
tor.close()
"""


def start_excluding_run(control: tuple[str, int], fingerprint: str) -> subprocess.Popen[str]:
    """Another study-buddy process on the same Tor, excluding one exit until its stdin closes."""
    process = subprocess.Popen(
        [sys.executable, "-c", EXCLUDING_RUN, control[0], str(control[1]), fingerprint, PASSWORD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "excluding"
    return process


@pytest.mark.tor
def test_exclusions_of_runs_sharing_a_tor_never_become_the_users(
    start_tor: Callable[..., tuple[str, int]],
) -> None:
    control = start_tor(f"HashedControlPassword {HASHED_PASSWORD}", "ExcludeExitNodes {us}")
    observer = raw_controller(control)
    users_value = observer.get_conf("ExcludeExitNodes")
    killed = start_excluding_run(control, EXIT_1)
    finishing = start_excluding_run(control, EXIT_2)
    both = observer.get_conf("ExcludeExitNodes")
    assert both.startswith(users_value.split(",{??}")[0])
    assert f"${EXIT_1}" in both and f"${EXIT_2}" in both  # the second run did not drop the first's
    killed.kill()  # -9: its exclusion stays in Tor for now
    killed.wait()
    with TorSetup(TorController.connect(control=control, password=PASSWORD), SOCKS) as setup:
        now = observer.get_conf("ExcludeExitNodes")  # connecting cleaned up after the dead run
        assert f"${EXIT_1}" not in now and f"${EXIT_2}" in now
        setup.controller.exclusions.update({EXIT_1: 600})
        assert f"${EXIT_1}" in observer.get_conf("ExcludeExitNodes")
    assert finishing.stdin is not None
    finishing.stdin.close()
    assert finishing.wait(timeout=30) == 0
    assert observer.get_conf("ExcludeExitNodes") == users_value  # only the user's value is left
    observer.close()


@pytest.mark.tor
def test_exclusions_end_with_their_cool_down(start_tor: Callable[..., tuple[str, int]]) -> None:
    control = start_tor()
    observer = raw_controller(control)
    now = [1000.0]
    tor = TorController.connect(control=control)
    exclusions = ExitExclusions(tor, registry_path("a clock test"), "me:1:run", clock=lambda: now[0])
    exclusions.update({EXIT_1: 60, EXIT_2: 600})
    assert observer.get_conf("ExcludeExitNodes") == f"{MARKER},${EXIT_1},${EXIT_2}"
    now[0] += 30
    exclusions.refresh()  # nothing has expired yet: nothing is sent
    assert observer.get_conf("ExcludeExitNodes") == f"{MARKER},${EXIT_1},${EXIT_2}"
    now[0] += 31
    exclusions.refresh()
    assert observer.get_conf("ExcludeExitNodes") == f"{MARKER},${EXIT_2}"
    exclusions.close()
    assert not observer.get_conf("ExcludeExitNodes")
    tor.close()
    observer.close()


@pytest.mark.tor
def test_newnym_spacing_on_a_real_tor(start_tor: Callable[..., tuple[str, int]]) -> None:
    tor = TorController.connect(control=start_tor())
    assert tor.newnym()
    assert not tor.newnym()
    tor.close()


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
    assert tor.controller.bootstrap_progress() == 0
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
def test_embedded_tor_on_a_taken_port(
    offline_torrc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        free_socks_port = torlaunch._free_ports(1)[0]
        monkeypatch.setattr(torlaunch, "_free_ports", lambda count: [free_socks_port, taken.getsockname()[1]])
        with pytest.raises(TorError, match=r"^tor could not start, a port is taken: Could not bind"):
            EmbeddedTor.launch(
                data_dir=tmp_path / "data", extra_torrc=offline_torrc, wait_for_bootstrap=False
            )
