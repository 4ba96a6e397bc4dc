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

**The bank.** On a network that mostly blocks, a new circuit lands on one of the few exits known to serve
only by chance (on a shared Tor nothing may steer it). So a built circuit whose exit is known to serve is
never thrown away: one that screening finds (when `keep` says so: known to serve, no worker on it) and one
a worker leaves because its exit is out of budget are kept in a bank, one per exit. A worker that needs a
circuit takes a banked one whose exit may be used now, and hands it back when it moves on. A circuit is
held by one worker at a time (with `IsolateSOCKSAuth` a circuit belongs to its SOCKS credentials, so
handing it over hands over the credentials), so per-worker isolation holds, and nothing global of Tor
changes. Tor stops using a circuit that carried no stream for `MaxCircuitDirtiness` (10 min by default):
banked circuits idle longer than `BANK_IDLE_S` are closed; one that Tor replaced anyway is seen at the
worker's probe, which names the exit of every circuit before a request is spent on it.
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
BANKED = "banked for any worker"  # why a built circuit is not the worker's spare, yet kept
BANK_IDLE_S = 540.0  # a banked circuit with no stream for this long is closed (Tor drops it after 600 s)


@dataclass(slots=True)
class _Spare:
    identity: Identity  # the identity being built, or the one ready
    task: Task | None = None
    exit: ExitRelay | None = None  # its exit once judged acceptable
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, slots=True)
class _Banked:
    identity: Identity
    relay: ExitRelay
    since: float  # monotonic time of its last stream


class SpareCircuits:
    """The spares of every worker of a run (keyed by the worker's number). Thread-safe."""

    def __init__(
        self,
        network: ExitNetwork,
        judge: Callable[[ExitRelay], str | None],
        timebase: Timebase,
        *,
        keep: Callable[[ExitRelay], bool] = lambda _relay: False,
        max_builds: int = MAX_BUILDS,
        build_interval_s: float = BUILD_INTERVAL_S,
    ) -> None:
        self._network = network
        self._judge = judge  # None: acceptable; else why not
        self._keep = keep  # whether a built circuit's exit is worth banking
        self._time = timebase
        self._max_builds = max_builds
        self._build_interval_s = build_interval_s
        self._lock = threading.RLock()  # re-entered when a timebase runs a task at once (a test's)
        self._spares: dict[int, _Spare] = {}
        self._bank: dict[str, _Banked] = {}  # exit fingerprint -> a built circuit on it nobody holds
        self._issued: set[str] = (
            set()
        )  # usernames handed out: banked circuits change hands, names must not clash
        self._stop = threading.Event()
        self.screened = 0  # circuits dropped for their exit, over the run
        self.built = 0
        self.banked = 0  # circuits screening put in the bank

    def fresh(self, identity: Identity) -> Identity:
        """`identity`, or a later generation of it if that name was handed out already (a banked circuit
        moves between workers, and the next generation of its name could be another worker's)."""
        with self._lock:
            while identity.username in self._issued:
                identity = identity.next()
            self._issued.add(identity.username)
            return identity

    def prepare(self, worker: int, identity: Identity) -> None:
        """Start building `identity`'s circuit for `worker`, unless its spare is already under way."""
        with self._lock:
            if worker in self._spares or self._stop.is_set():
                return
            spare = _Spare(self.fresh(identity))
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

    def deposit(self, identity: Identity, relay: ExitRelay) -> bool:
        """Keep `identity`'s built circuit on `relay` for whichever worker needs that exit next; False (the
        caller closes it) when the bank holds a circuit on that exit already, or the run is ending."""
        with self._lock:
            if self._stop.is_set() or relay.fingerprint in self._bank:
                return False
            self._bank[relay.fingerprint] = _Banked(identity, relay, self._time.monotonic())
        return True

    def banked_exits(self) -> frozenset[str]:
        """The exits the bank holds a circuit on (idle ones past `BANK_IDLE_S` are closed first)."""
        stale = []
        with self._lock:
            now = self._time.monotonic()
            for fingerprint, banked in list(self._bank.items()):
                if now - banked.since > BANK_IDLE_S:
                    stale.append(self._bank.pop(fingerprint).identity)
            exits = frozenset(self._bank)
        for identity in stale:
            self._network.release(identity)
        return exits

    def withdraw(self, fingerprint: str) -> Identity | None:
        """Take the banked circuit on this exit (None if none is banked)."""
        with self._lock:
            banked = self._bank.pop(fingerprint, None)
        return None if banked is None else banked.identity

    def hand_out(self, worker: int, banked: str | None, fallback: Identity | None) -> Identity | None:
        """The banked circuit on exit `banked` (if given and still there), else the worker's spare, else
        `fallback` under a name not handed out yet."""
        identity = self.withdraw(banked) if banked is not None else None
        identity = identity or self.take(worker)
        if identity is None and fallback is not None:
            identity = self.fresh(fallback)
        return identity

    def close(self) -> None:
        """Stop every background build (at its next step), and close the banked circuits: a best effort,
        since a run also ends this way when Tor is gone (what stopped it is the run's report, not this)."""
        self._stop.set()
        with self._lock:
            for spare in self._spares.values():
                spare.cancel.set()
            banked = [item.identity for item in self._bank.values()]
            self._bank.clear()
        for identity in banked:
            try:
                self._network.release(identity)
            except TorError as exc:
                log.debug("banked circuit of %s not closed: %s", identity.username, exc)
                return  # the next ones would fail the same way

    def _screen(self, relay: ExitRelay | None, identity: Identity) -> str | None:
        """Why this built circuit is not the worker's spare (None: it is); a circuit on an exit worth
        banking goes to the bank."""
        if relay is None:
            return "no stream reached YouTube"
        if self._keep(relay) and self.deposit(identity, relay):
            with self._lock:
                self.banked += 1
            return BANKED
        return self._judge(relay)

    def _build(self, spare: _Spare) -> None:
        identity = spare.identity
        try:
            for attempt in range(self._max_builds):
                if attempt and self._time.sleep(self._build_interval_s, spare.cancel):
                    return
                relay = self._network.probe(identity, PROBE_TIMEOUT_S)
                rejected = self._screen(relay, identity)
                with self._lock:
                    self.built += 1
                    self.screened += rejected is not None and relay is not None
                if rejected is None:
                    spare.exit = relay
                    log.debug("spare %s ready on %s", identity.username, relay.label if relay else None)
                    return
                log.debug("spare %s: %s; building another", identity.username, rejected)
                if rejected is not BANKED:
                    self._network.release(identity)
                identity = self.fresh(identity.next())
                spare.identity = identity
                if spare.cancel.is_set():
                    return  # the worker needs it now: its circuit is built when first used
        except TorError as exc:  # the worker's own probe reports Tor being gone
            log.debug("spare of %s failed: %s", identity.username, exc)
        except Exception as exc:  # a best effort: never let a background build take the run down
            log.warning("spare of %s failed: %s", identity.username, exc, exc_info=exc)
