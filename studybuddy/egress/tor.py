"""Talking to Tor's control port: authentication, which exit carried what, exclusions, NEWNYM.

One `TorController` serves a whole run (stem serialises control messages, so workers may share it).
`torstreams.StreamMap` joins Tor's STREAM and CIRC events, so the exit of a worker's stream is read from
Tor instead of guessed: by SOCKS username (`exit_for`) and, exactly, by the local address of the socket
that carried one request (`exit_of_source`). The exit's address comes from the consensus, looked up lazily
and cached. This run's exclusions of cooling exits live in `torexclusions.ExitExclusions`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stem
import stem.connection
from stem.control import Controller, EventType, Listener, Signal

from studybuddy.egress.sessions import ProxyEndpoint, new_run_id
from studybuddy.egress.torexclusions import ExitExclusions, registry_path
from studybuddy.egress.torstreams import Hop, StreamMap, exit_hop, unquote
from studybuddy.errors import TorError
from studybuddy.owners import process_owner

log = logging.getLogger(__name__)

NEWNYM_SPACING = 10.0  # seconds: Tor itself rate-limits NEWNYM to one per 10 s
_AUTH_HINT = "set STUDY_BUDDY_TOR_PASSWORD"
_BOOTSTRAP_PROGRESS = re.compile(r"PROGRESS=(\d+)")
_BOOTSTRAP_SUMMARY = re.compile(r'SUMMARY=("(?:[^"\\]|\\.)*")')
_SOCKS_PASSWORD = re.compile(r'(SOCKS_PASSWORD)=(?:"(?:[^"\\]|\\.)*"|\S+)')


class _HideStemSecrets(logging.Filter):
    """stem logs raw control traffic at TRACE (AUTHENTICATE with the password) and whole events at INFO
    (SOCKS_PASSWORD): drop the first, redact the second, whatever logging the application configures."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.DEBUG:
            return False
        message = record.getMessage()
        redacted = _SOCKS_PASSWORD.sub(r"\1=<hidden>", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_STEM_LOG_FILTER = _HideStemSecrets()


class TorUnreachableError(TorError):
    """Nothing answers at the control address (so `--tor auto` may launch its own tor)."""


@dataclass(frozen=True, slots=True)
class ExitRelay:
    """The last hop of a circuit: where YouTube sees our requests come from."""

    fingerprint: str
    nickname: str | None
    address: str | None

    @property
    def label(self) -> str:
        """`nickname (address)`, falling back to the fingerprint for what is unknown."""
        name = self.nickname or self.fingerprint[:8]
        return f"{name} ({self.address or 'address unknown'})"


@dataclass(frozen=True, slots=True)
class CircuitInfo:
    """One circuit as `study-buddy tor status` shows it."""

    id: str
    status: str
    purpose: str | None
    socks_username: str | None
    exit: ExitRelay | None


def _connect_error(where: str, exc: Exception) -> TorError:
    """One clear line for each way connecting and authenticating can fail (never the password)."""
    if isinstance(exc, stem.SocketError):
        return TorUnreachableError(f"no Tor control port answers at {where}")
    if isinstance(exc, stem.connection.IncorrectSocketType):
        return TorError(f"{where} is not a Tor control port (something else answers there)")
    if isinstance(exc, stem.connection.UnreadableCookieFile):
        return TorError(f"cannot read Tor's control cookie file {exc.cookie_path} (check its permissions)")
    if isinstance(exc, stem.connection.MissingPassword):
        return TorError(f"Tor at {where} wants a control password ({_AUTH_HINT})")
    if isinstance(exc, stem.connection.IncorrectPassword | stem.connection.PasswordAuthFailed):
        return TorError(f"Tor refused the control password ({_AUTH_HINT})")
    return TorError(f"cannot use the Tor control port at {where}: {exc}")


class TorController:
    """The run's one connection to Tor's control port."""

    def __init__(
        self,
        controller: Controller,
        *,
        where: str = "tor",
        clock: Callable[[], float] = time.monotonic,
        owner: str | None = None,
    ) -> None:
        self._controller = controller
        self._clock = clock
        self._streams = StreamMap()
        self._addresses: dict[str, str] = {}  # fingerprint -> address, from the consensus
        self._last_newnym: float | None = None
        self._newnym_lock = threading.Lock()
        self._closed = False
        self.where = where  # the control address, as the user gave it (names this Tor in messages)
        self.exclusions = ExitExclusions(self, registry_path(where), owner or process_owner(new_run_id()))
        controller.add_event_listener(self._streams.on_stream, EventType.STREAM)
        controller.add_event_listener(self._streams.on_circuit, EventType.CIRC)
        for circuit in controller.get_circuits([]):  # circuits built before we listened
            self._streams.on_circuit(circuit)

    @classmethod
    def connect(
        cls,
        *,
        control: tuple[str, int] | Path,
        password: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> TorController:
        """Connect to a control port `(host, port)` or socket path and authenticate however Tor allows."""
        logging.getLogger("stem").addFilter(_STEM_LOG_FILTER)  # adds it once
        where = str(control) if isinstance(control, Path) else f"{control[0]}:{control[1]}"
        try:
            if isinstance(control, Path):
                controller = Controller.from_socket_file(str(control))
            else:
                controller = Controller.from_port(control[0], control[1])
        except stem.SocketError as exc:
            raise _connect_error(where, exc) from None
        try:
            stem.connection.authenticate(controller, password=password)
            tor = cls(controller, where=where, clock=clock)
            tor.exclusions.clean()  # what runs that died left in a shared Tor
        except (stem.connection.AuthenticationFailure, stem.ControllerError) as exc:
            controller.close()
            raise _connect_error(where, exc) from None
        log.info("connected to Tor %s at %s", controller.get_version(), where)
        return tor

    def socks_endpoint(self) -> ProxyEndpoint:
        """Tor's first SOCKS listener."""
        listeners = self._controller.get_listeners(Listener.SOCKS, [])
        if not listeners:
            raise TorError("Tor has no SOCKS listener (set SocksPort in its torrc)")
        host, port = listeners[0]
        return ProxyEndpoint(host, int(port))

    def attachments(self) -> int:
        """See `StreamMap.attachments`: read before opening a stream, then `wait_for_stream`."""
        return self._streams.attachments()

    def wait_for_stream(self, username: str, mark: int, timeout: float) -> ExitRelay | None:
        """The exit of `username`'s stream attached after `mark` (events lag a little behind SOCKS)."""
        if not self._streams.wait(lambda: self._streams.attached_since(username, mark), timeout):
            return None
        return self.exit_for(username)

    def exit_of_source(self, source: tuple[str, int], timeout: float) -> ExitRelay | None:
        """The exit that carried the stream from local address `source`: the circuit it was attached to,
        read from Tor's events (they may lag a little behind the answer, hence `timeout`)."""
        found: list[Hop] = []

        def known() -> bool:
            hop = self._streams.exit_of_source(*source)
            if hop is not None:
                found.append(hop)
            return hop is not None

        if not self._streams.wait(known, timeout):
            return None
        return self._relay(found[-1].fingerprint, found[-1].nickname)

    def exit_for(self, username: str) -> ExitRelay | None:
        """The exit of the most recent stream of `username`, or None before its first stream."""
        exits = self.exits_for(username)
        return exits[0] if exits else None

    def exits_for(self, username: str) -> list[ExitRelay]:
        """Every live exit `username` has used, most recent first (dirtiness or conflux can give >1)."""
        relays: list[ExitRelay] = []
        for circuit_id in self._streams.circuits_of(username):
            relay = self._relay_of(circuit_id)
            if relay is not None and relay not in relays:
                relays.append(relay)
        return relays

    def log_events(self) -> None:
        """Log every circuit and stream event at INFO (`DEBUG_LOG_TOR_EVENTS`); never a SOCKS password."""
        self._controller.add_event_listener(_log_circuit, EventType.CIRC)
        self._controller.add_event_listener(_log_stream, EventType.STREAM)

    def exit_fingerprints(self) -> list[str]:
        """The relays of the consensus a new circuit can exit through (Exit flag, not BadExit)."""
        statuses = self._call(
            lambda: list(self._controller.get_network_statuses())
        )  # a generator: read it here
        return [
            status.fingerprint
            for status in statuses
            if "Exit" in status.flags and "BadExit" not in status.flags
        ]

    def circuits(self) -> list[CircuitInfo]:
        """Tor's current circuits, with their exits."""
        infos = []
        for circuit in self._call(self._controller.get_circuits):
            hop = exit_hop(circuit.path) if circuit.status == "BUILT" else None
            username = circuit.socks_username
            infos.append(
                CircuitInfo(
                    id=circuit.id,
                    status=circuit.status,
                    purpose=circuit.purpose,
                    socks_username=unquote(username) if username else None,
                    exit=None if hop is None else self._relay(hop.fingerprint, hop.nickname),
                )
            )
        return infos

    def close_circuits_of(self, username: str) -> int:
        """Close the circuits only `username`'s streams use; returns how many were closed."""
        closed = 0
        for circuit_id in self._streams.circuits_of(username):
            if self._streams.users_of(circuit_id) != {username}:
                continue
            try:
                self._controller.close_circuit(circuit_id)
                closed += 1
            except stem.InvalidArguments:  # already gone
                continue
            except stem.ControllerError as exc:
                raise TorError(f"Tor could not close circuit {circuit_id}: {exc}") from None
        log.debug("closed %d circuit(s) of %s", closed, username)
        return closed

    def get_excluded(self) -> str:
        """Tor's ExcludeExitNodes ("" when unset); see `torexclusions` for who owns which entries."""
        return str(self._call(self._controller.get_conf, "ExcludeExitNodes", "") or "")

    def set_excluded(self, value: str) -> None:
        self._call(self._controller.set_conf, "ExcludeExitNodes", value)

    def newnym(self) -> bool:
        """Global NEWNYM (every circuit renews): refused within 10 s of the previous one."""
        with self._newnym_lock:
            now = self._clock()
            if self._last_newnym is not None and now - self._last_newnym < NEWNYM_SPACING:
                return False
            self._call(self._controller.signal, Signal.NEWNYM)
            self._last_newnym = now
        log.info("sent NEWNYM")
        return True

    def bootstrap_phase(self) -> tuple[int, str]:
        """Tor's bootstrap percentage and its summary of the phase (e.g. `(100, "Done")`)."""
        phase = self._call(self._controller.get_info, "status/bootstrap-phase")
        progress = _BOOTSTRAP_PROGRESS.search(phase)
        summary = _BOOTSTRAP_SUMMARY.search(phase)
        return (int(progress.group(1)) if progress else 0, unquote(summary.group(1)) if summary else "")

    def is_alive(self) -> bool:
        """Whether the control connection is open (it closes when Tor dies or restarts)."""
        return not self._closed and bool(self._controller.is_alive())

    def close(self) -> None:
        """Take this run's exclusions out of Tor and disconnect; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self.exclusions.close()
        except (TorError, OSError) as exc:
            log.warning("could not restore ExcludeExitNodes: %s", exc)
        self._controller.close()

    def _relay_of(self, circuit_id: str) -> ExitRelay | None:
        hop = self._streams.exit_hop(circuit_id)
        return None if hop is None else self._relay(hop.fingerprint, hop.nickname)

    def _relay(self, fingerprint: str, nickname: str | None) -> ExitRelay:
        address = self._addresses.get(fingerprint)
        if address is None:  # not cached yet, or the consensus did not list it last time
            address = getattr(self._controller.get_network_status(fingerprint, None), "address", None)
            if address is not None:
                self._addresses[fingerprint] = address
        return ExitRelay(fingerprint, nickname, address)

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except stem.ControllerError as exc:
            raise TorError(f"Tor control request failed: {exc}") from None


def _log_circuit(event: Any) -> None:
    hop = exit_hop(event.path) if event.path else None
    exit_name = f" exit {hop.nickname or ''}~{hop.fingerprint[:8]}" if hop else ""
    log.info("tor circuit %s %s%s", event.id, event.status, exit_name)


def _log_stream(event: Any) -> None:
    username = event.keyword_args.get("SOCKS_USERNAME")
    who = f" user {unquote(username)}" if username else ""
    log.info(
        "tor stream %s %s circuit %s target %s%s", event.id, event.status, event.circ_id, event.target, who
    )
