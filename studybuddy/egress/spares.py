"""Each worker's next circuit, built while it fetches, and judged before a YouTube request is spent on it.

Tor builds a circuit on demand, which takes seconds on the real network; and on today's YouTube most new
circuits land on an exit that is known to be blocked. So while a worker fetches, a background task builds
the circuit of its next identity (new SOCKS credentials: a new circuit of its own) and looks at its exit.
An exit the `judge` turns down (blocked, cooling) costs nothing but the circuit: the task closes it and
builds another, with fresh credentials, until one lands on an exit worth a request, `max_builds` have
been tried, or the worker needs it. When the worker renews it takes that identity, so its next request
goes out through a circuit that is already built and already judged.

Builds are spaced (`build_interval_s` per worker at least), so screening stays polite to the Tor network.
Only one task per worker runs at a time, and the worker waits for it before using the identity it works
on: two streams racing for a circuit that does not exist yet could get two circuits (two exits).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from studybuddy.egress.circuits import ExitNetwork
from studybuddy.egress.sessions import Identity
from studybuddy.egress.tor import ExitRelay
from studybuddy.errors import TorError
from studybuddy.timebase import Task, Timebase

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 30.0  # a spare that takes longer is not worth waiting for
MAX_BUILDS = 12  # circuits one spare may try before it settles for what it has
BUILD_INTERVAL_S = 1.0  # at least this long between two builds of one worker's spare


@dataclass(slots=True)
class _Spare:
    identity: Identity  # the identity being built, or the one ready
    task: Task | None = None
    exit: ExitRelay | None = None  # its exit once judged acceptable
    cancel: threading.Event = field(default_factory=threading.Event)


class SpareCircuits:
    """The spares of every worker of a run (keyed by the worker's number). Thread-safe."""

    def __init__(
        self,
        network: ExitNetwork,
        judge: Callable[[ExitRelay], str | None],
        timebase: Timebase,
        *,
        max_builds: int = MAX_BUILDS,
        build_interval_s: float = BUILD_INTERVAL_S,
    ) -> None:
        self._network = network
        self._judge = judge  # None: acceptable; else why not
        self._time = timebase
        self._max_builds = max_builds
        self._build_interval_s = build_interval_s
        self._lock = threading.RLock()  # re-entered when a timebase runs a task at once (a test's)
        self._spares: dict[int, _Spare] = {}
        self._stop = threading.Event()
        self.screened = 0  # circuits dropped for their exit, over the run
        self.built = 0

    def prepare(self, worker: int, identity: Identity) -> None:
        """Start building `identity`'s circuit for `worker`, unless its spare is already under way."""
        with self._lock:
            if worker in self._spares or self._stop.is_set():
                return
            spare = _Spare(identity)
            self._spares[worker] = spare
            spare.task = self._time.start(lambda: self._build(spare), f"circuit-w{worker}")

    def take(self, worker: int) -> Identity | None:
        """The worker's spare identity (its circuit built; judged acceptable, unless screening ran out),
        or None when there is none. Waits for a build in flight to finish first."""
        with self._lock:
            spare = self._spares.pop(worker, None)
        if spare is None:
            return None
        spare.cancel.set()
        if spare.task is not None:
            spare.task.join(PROBE_TIMEOUT_S)
        return spare.identity

    def settle(self, worker: int, identity: Identity) -> None:
        """Before `identity` is used: wait for its circuit if the worker's spare is building it."""
        with self._lock:
            spare = self._spares.get(worker)
        if spare is not None and spare.identity == identity and spare.task is not None:
            spare.task.join(PROBE_TIMEOUT_S)

    def close(self) -> None:
        """Stop every background build (at its next step)."""
        self._stop.set()
        with self._lock:
            for spare in self._spares.values():
                spare.cancel.set()

    def _build(self, spare: _Spare) -> None:
        identity = spare.identity
        try:
            for attempt in range(self._max_builds):
                if attempt and self._time.sleep(self._build_interval_s, spare.cancel):
                    return
                relay = self._network.probe(identity, PROBE_TIMEOUT_S)
                rejected = "no stream reached YouTube" if relay is None else self._judge(relay)
                with self._lock:
                    self.built += 1
                    self.screened += rejected is not None and relay is not None
                if rejected is None or spare.cancel.is_set():
                    spare.exit = relay
                    log.debug("spare %s ready on %s", identity.username, relay.label if relay else None)
                    return
                log.debug("spare %s: %s; building another", identity.username, rejected)
                self._network.release(identity)
                identity = identity.next()
                spare.identity = identity
        except TorError as exc:  # the worker's own probe reports Tor being gone
            log.debug("spare of %s failed: %s", identity.username, exc)
        except Exception as exc:  # a best effort: never let a background build take the run down
            log.warning("spare of %s failed: %s", identity.username, exc, exc_info=exc)
