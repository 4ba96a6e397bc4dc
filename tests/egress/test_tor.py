"""Tests for studybuddy.egress.tor (the embedded tor and `resolve_tor` are in test_torlaunch).

Unit tests replay recorded CIRC/STREAM event lines through a fake stem controller. Tests marked
`tor` start a real tor with `DisableNetwork 1` on free loopback ports (`start_tor`, tests/tor_fixtures.py):
it makes no outside connection.
"""

from __future__ import annotations

import http.server
import logging
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import stem
import stem.connection
from stem.control import Controller, EventType

from studybuddy.egress.sessions import ProxyEndpoint
from studybuddy.egress.tor import ExitRelay, TorController, TorUnreachableError
from studybuddy.egress.torexclusions import MARKER, ExitExclusions, registry_path
from studybuddy.egress.torlaunch import TorSetup
from studybuddy.errors import TorError
from tests.torevents import EXIT_1, EXIT_2, OTHER, USER, circ, stream

PASSWORD = "secret-pw"
HASHED_PASSWORD = "16:AB1ED063B746346B6070693D3948415965E0546B600A0B12D3C00D6047"  # tor --hash-password
NOWHERE = ("127.0.0.1", 1)  # nothing listens on port 1 on loopback
SOCKS = ProxyEndpoint("127.0.0.1", 9050)


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
        self.alive = True  # False: the control connection closed (Tor died)

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

    def is_alive(self) -> bool:
        return self.alive and not self.closed

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
    assert tor.bootstrap_phase()[0] == 75


def test_circuits_show_exits(fake: FakeController) -> None:
    (info,) = make_tor(fake).circuits()
    assert (info.id, info.status, info.purpose) == ("3", "BUILT", "GENERAL")
    assert info.exit == ExitRelay(EXIT_2, "early", "198.51.100.2")


# --- a real tor, offline ---------------------------------------------------------------------------------


def raw_controller(control: tuple[str, int]) -> Controller:
    controller = Controller.from_port(*control)
    controller.authenticate(password=PASSWORD)
    controller.set_caching(False)  # see what the other controller set
    return controller


def auth_methods(control: tuple[str, int] | Path) -> set[str]:
    """How the tor at `control` lets a controller authenticate (PROTOCOLINFO, asked before any)."""
    raw = (
        Controller.from_socket_file(str(control))
        if isinstance(control, Path)
        else Controller.from_port(*control)
    )
    try:
        return {str(method).upper() for method in stem.connection.get_protocolinfo(raw).auth_methods}
    finally:
        raw.close()


def assert_usable_until_closed(tor: TorController) -> None:
    """Tor answers GETINFO on an authenticated connection only; `close()` ends it."""
    assert tor.is_alive()
    assert tor.bootstrap_phase() == (0, "Starting")  # DisableNetwork: it never gets further
    tor.close()
    assert not tor.is_alive()


@pytest.mark.tor
def test_connect_without_authentication(start_tor: Callable[..., tuple[str, int]]) -> None:
    control = start_tor()
    assert auth_methods(control) == {"NONE"}
    assert_usable_until_closed(TorController.connect(control=control))


@pytest.mark.tor
def test_connect_with_cookie_safecookie(start_tor: Callable[..., tuple[str, int]]) -> None:
    control = start_tor("CookieAuthentication 1")
    assert auth_methods(control) == {"COOKIE", "SAFECOOKIE"}  # no way in without the cookie
    assert_usable_until_closed(TorController.connect(control=control))


@pytest.mark.tor
def test_connect_through_a_control_socket(start_tor: Callable[..., tuple[str, int]], tmp_path: Path) -> None:
    path = tmp_path / "ctl"
    start_tor(f"ControlSocket {path}", "CookieAuthentication 1")
    assert auth_methods(path) == {"COOKIE", "SAFECOOKIE"}
    assert_usable_until_closed(TorController.connect(control=path))


@pytest.mark.tor
def test_connect_with_password(start_tor: Callable[..., tuple[str, int]]) -> None:
    control = start_tor(f"HashedControlPassword {HASHED_PASSWORD}")
    assert auth_methods(control) == {"PASSWORD"}
    assert_usable_until_closed(TorController.connect(control=control, password=PASSWORD))
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
from studybuddy.egress.tor import TorController
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


def test_a_tor_that_dies_while_the_consensus_is_read_is_a_tor_error() -> None:
    fake = FakeController()

    def statuses() -> Iterator[Any]:
        raise stem.SocketClosed("control connection closed")
        yield  # a generator, as stem's: the query runs only when it is read

    fake.get_network_statuses = statuses  # type: ignore[attr-defined]
    with pytest.raises(TorError, match="Tor control request failed"):
        make_tor(fake).exit_fingerprints()
