"""Which Tor exit carried which stream: Tor's STREAM and CIRC events joined into one thread-safe map.

Workers are told apart by their SOCKS username (see `sessions.Identity`). Tor reports every stream with its
SOCKS username, its source address (the local end of our SOCKS connection, on the NEW event) and, once it
is attached, its circuit; every circuit with its path. `StreamMap` joins them, so that

- `circuits_of(username)` gives the live circuits a worker's streams use (most recent first), and
- `exit_of_source(address)` gives the exit of the circuit that carried the stream of one local socket: a
  request whose answer was a block is charged to exactly that exit, even if the worker has renewed its
  circuit since, or Tor moved a later stream of the same username elsewhere (circuit dirtiness).

The exit of a stream is written down when the stream is attached, so it stays known after the stream and
its circuit close (a renewal closes the old circuit). Live state is bounded by what Tor has open; what is
kept of ended streams is bounded by `SOURCES_KEPT`.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

SOURCES_KEPT = 4096  # attached streams remembered by source address (the newest), for blame after close
_ENDED = ("CLOSED", "FAILED")


@dataclass(frozen=True, slots=True)
class Hop:
    """A relay of a circuit's path (its last hop is the exit)."""

    fingerprint: str
    nickname: str | None


def unquote(value: str) -> str:
    """A control-protocol QuotedString's content (stem may or may not have stripped the quotes)."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return re.sub(r"\\(.)", r"\1", value)


def exit_hop(path: Iterable[tuple[str | None, str | None]]) -> Hop | None:
    """The last hop of a circuit path as stem gives it (`[(fingerprint, nickname), ...]`)."""
    hops = [hop for hop in path if hop[0]]
    if not hops:
        return None
    fingerprint, nickname = hops[-1]
    assert fingerprint is not None  # filtered above; tells mypy
    return Hop(fingerprint.upper(), nickname)


def source_key(address: str, port: int) -> str:
    """How a stream's source address is keyed: `host:port`, as Tor writes SOURCE_ADDR."""
    return f"{address}:{port}"


class StreamMap:
    """SOCKS username and source address -> circuit -> exit, fed with parsed STREAM and CIRC events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified after every event
        self._exits: dict[str, Hop] = {}  # built circuit id -> its exit
        self._stream_users: dict[str, str] = {}  # live stream id -> SOCKS username
        self._stream_sources: dict[str, str] = {}  # live stream id -> source address
        self._user_circuits: dict[str, dict[str, None]] = {}  # username -> circuit ids, oldest use first
        self._source_exits: OrderedDict[str, Hop] = OrderedDict()  # source address -> exit it was attached to
        self._attachments = 0  # streams attached to a circuit so far (all usernames)
        self._user_attached: dict[str, int] = {}  # username -> value of _attachments at its latest attach

    def on_circuit(self, event: Any) -> None:
        """Handle a `stem.response.events.CircuitEvent` (also the entries of `get_circuits()`)."""
        with self._lock:
            if event.status in _ENDED:
                self._exits.pop(event.id, None)
                self._forget_circuit(event.id)
            elif event.status == "BUILT" and (hop := exit_hop(event.path)) is not None:
                self._exits[event.id] = hop
            self._changed.notify_all()

    def on_stream(self, event: Any) -> None:
        """Handle a `stem.response.events.StreamEvent`."""
        with self._lock:
            self._changed.notify_all()
            if event.status in _ENDED:
                self._stream_users.pop(event.id, None)
                self._stream_sources.pop(event.id, None)
                return
            if event.source_address is not None and event.source_port is not None:
                self._stream_sources[event.id] = source_key(event.source_address, event.source_port)
            raw_username = event.keyword_args.get("SOCKS_USERNAME")
            username = unquote(raw_username) if raw_username else self._stream_users.get(event.id)
            if username is None:
                return
            self._stream_users[event.id] = username
            if event.circ_id:
                self._attach(event.id, username, event.circ_id)

    def _attach(self, stream_id: str, username: str, circuit_id: str) -> None:
        circuits = self._user_circuits.setdefault(username, {})
        circuits.pop(circuit_id, None)  # re-insert: most recent use last
        circuits[circuit_id] = None
        self._attachments += 1
        self._user_attached[username] = self._attachments
        source = self._stream_sources.get(stream_id)
        hop = self._exits.get(circuit_id)
        if source is not None and hop is not None:
            self._source_exits.pop(source, None)
            self._source_exits[source] = hop
            while len(self._source_exits) > SOURCES_KEPT:
                self._source_exits.popitem(last=False)

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait (at most `timeout` seconds) until `predicate` holds, re-checking after every event.

        `predicate` may call this map's other methods: it runs without the lock held.
        """
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                self._changed.wait(min(remaining, 0.1))
        return True

    def attachments(self) -> int:
        """A counter that grows with every stream attached to a circuit: read it before opening one."""
        with self._lock:
            return self._attachments

    def attached_since(self, username: str, mark: int) -> bool:
        """Whether a stream of `username` was attached after `attachments()` returned `mark`."""
        with self._lock:
            return self._user_attached.get(username, 0) > mark

    def circuits_of(self, username: str) -> list[str]:
        """The live circuits `username`'s streams have used, most recent first."""
        with self._lock:
            return list(reversed(self._user_circuits.get(username, {})))

    def exit_hop(self, circuit_id: str) -> Hop | None:
        """The last hop of a built circuit."""
        with self._lock:
            return self._exits.get(circuit_id)

    def exit_of_source(self, address: str, port: int) -> Hop | None:
        """The exit of the circuit the stream from this local address was attached to (None: not seen).

        Matched on address and port; when Tor saw our connection from another address (a NAT between us
        and a remote Tor), on the port alone if exactly one stream had it.
        """
        with self._lock:
            hop = self._source_exits.get(source_key(address, port))
            if hop is not None:
                return hop
            suffix = f":{port}"
            matches = [found for key, found in self._source_exits.items() if key.endswith(suffix)]
        return matches[0] if len(matches) == 1 else None

    def users_of(self, circuit_id: str) -> set[str]:
        """Every username whose streams have used `circuit_id`."""
        with self._lock:
            return {user for user, circuits in self._user_circuits.items() if circuit_id in circuits}

    def _forget_circuit(self, circuit_id: str) -> None:
        for username in list(self._user_circuits):
            circuits = self._user_circuits[username]
            circuits.pop(circuit_id, None)
            if not circuits:
                del self._user_circuits[username]
                self._user_attached.pop(username, None)
