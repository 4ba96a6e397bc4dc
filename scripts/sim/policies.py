"""The policies the simulator compares, each driving simulated workers through one `SimWorld`.

- `new`: study-buddy's pacer as it ships (`studybuddy.runs.pacing.build_pacer`): exact blame, reputation,
  adaptive pace, judged spare circuits, the bank of circuits on exits known to serve, and trials of new
  exits (free at first, earned by service, spaced while blocks dominate).
- `baseline`: the policy before it (kept here, frozen): the same limiter with the fixed `--per-exit` budget,
  every new circuit used whatever its exit, a block cools its exit for `--exit-cooldown` and counts
  against the video (given up after `--max-rotations`).
- `newnym`: the anchor's method: the workers share one circuit, and a block sends NEWNYM (every circuit
  renewed; Tor allows one per 10 s) and tries again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from scripts.sim.vtime import VirtualTime
from scripts.sim.world import SimWorld
from studybuddy.config import Settings
from studybuddy.egress.exits import Decision, ExitLimiter
from studybuddy.egress.sessions import Identity
from studybuddy.egress.tor import NEWNYM_SPACING, ExitRelay
from studybuddy.errors import BlockedError
from studybuddy.runs.pacing import build_pacer
from studybuddy.runs.progress import ProgressMonitor
from studybuddy.runs.workers import RunStopped
from studybuddy.store.exit_records import ExitRecord, Standing

MAX_NEW_CIRCUITS = 50  # a worker gives up waiting for a usable circuit after this many in a row


class _Session:
    def close(self) -> None:
        return None


class SimWorker:
    """What a pacer needs of a worker: its number and its SOCKS identities (no HTTP session)."""

    def __init__(self, index: int, vt: VirtualTime) -> None:
        self.index = index
        self.identity: Identity | None = Identity("sim", index, 0, "pw")
        self.next_identity: Identity | None = self.identity.next()
        self.session = _Session()
        self.last_source = None
        self._vt = vt
        self._since = vt.now

    def renew(self, identity: Identity | None = None) -> None:
        assert self.next_identity is not None
        self.identity = identity or self.next_identity
        self.next_identity = self.identity.next()
        self._since = self._vt.now

    def circuit_age(self) -> float:
        return self._vt.now - self._since


@dataclass
class Tally:
    """What a run did: when each video finished, and how many were given up."""

    started_at: float = 0.0
    finished_at: list[float] = field(default_factory=list)
    given_up: int = 0
    blocked_at_finish: list[int] = field(default_factory=list)  # blocked answers so far, per finish
    requests_at_finish: list[int] = field(default_factory=list)
    known_good: frozenset[str] = frozenset()  # exits the run knew to serve at its end (new policy only)
    trials: int = 0


class Videos:
    """The run's queue: each worker takes the next video until none is left."""

    def __init__(self, count: int) -> None:
        self._left = count
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._left == 0:
                return False
            self._left -= 1
            return True


Fetcher = Callable[[SimWorker], None]


class MemoryStore:
    """A `ReputationStore` that outlives a run, as the archive does: the warm runs start from it."""

    def __init__(self) -> None:
        self.records: dict[str, ExitRecord] = {}

    def exit_records(self) -> list[ExitRecord]:
        return list(self.records.values())

    def update_exit_record(self, key: str, change: Callable[[ExitRecord], ExitRecord]) -> ExitRecord:
        record = change(self.records.get(key) or ExitRecord(key))
        self.records[key] = record
        return record


def run_new(
    world: SimWorld,
    settings: Settings,
    workers: int,
    videos: int,
    vt: VirtualTime,
    store: MemoryStore | None = None,
) -> Tally:
    monitor = ProgressMonitor(clock=vt.monotonic)
    monitor.start([], workers)
    pacer = build_pacer(world, settings, monitor, store=store, timebase=vt, random=world.rng.random)
    try:
        tally = _drive(world, pacer, settings, workers, videos, vt)
    finally:
        pacer.close()
    good = {record.key for record in pacer.reputation.ranked() if record.standing is Standing.GOOD}
    tally.known_good = frozenset(good)
    tally.trials = pacer.trials.tried
    return tally


def run_baseline(world: SimWorld, settings: Settings, workers: int, videos: int, vt: VirtualTime) -> Tally:
    limiter = ExitLimiter(
        settings.per_exit,
        min_interval_s=settings.exit_interval_s,
        jitter_s=settings.exit_interval_s / 2,
        cooldown_s=settings.exit_cooldown_s,
        clock=vt.monotonic,
        random=world.rng.random,
    )
    return _drive(world, BaselinePacer(world, limiter, settings, vt), settings, workers, videos, vt)


def run_newnym(world: SimWorld, settings: Settings, workers: int, videos: int, vt: VirtualTime) -> Tally:
    shared = NewnymRotation(world, vt)
    return _drive(world, shared, settings, workers, videos, vt, shared_identity=True)


def _drive(
    world: SimWorld,
    pacer: object,
    settings: Settings,
    workers: int,
    videos: int,
    vt: VirtualTime,
    *,
    shared_identity: bool = False,
) -> Tally:
    tally = Tally(started_at=vt.now)
    queue = Videos(videos)
    stop = threading.Event()

    def work(index: int) -> None:
        worker = SimWorker(0 if shared_identity else index, vt)
        worker.index = index
        while queue.take():
            _one_video(world, pacer, worker, settings, tally, stop)

    def main() -> None:
        tasks = [vt.start(lambda n=n: work(n), f"worker-{n}") for n in range(workers)]  # type: ignore[misc]
        for task in tasks:
            task.join()

    vt.run(main)
    return tally


def _one_video(
    world: SimWorld, pacer: object, worker: SimWorker, settings: Settings, tally: Tally, stop: threading.Event
) -> None:
    rotations = 0
    while True:
        try:
            pacer.before_video(worker, stop)  # type: ignore[attr-defined]
        except RunStopped:
            return
        assert worker.identity is not None
        if world.fetch(worker.identity):
            pacer.after_video(worker)  # type: ignore[attr-defined]
            tally.finished_at.append(world.vt.now)
            tally.blocked_at_finish.append(world.blocked_answers)
            tally.requests_at_finish.append(world.requests)
            return
        if rotations >= settings.max_rotations:
            tally.given_up += 1
            return
        rotations += pacer.on_blocked(worker, BlockedError("sim", "bot check"))  # type: ignore[attr-defined]


class BaselinePacer:
    """The pacing before issue 10, frozen: probe, ask the limiter, renew at random, blame the paced exit."""

    def __init__(self, world: SimWorld, limiter: ExitLimiter, settings: Settings, vt: VirtualTime) -> None:
        self.world = world
        self.limiter = limiter
        self.settings = settings
        self.vt = vt
        self.exits: dict[int, ExitRelay] = {}
        limiter.set_exit_pool(world.exit_pool())

    def before_video(self, worker: SimWorker, stop: threading.Event) -> None:
        for _ in range(MAX_NEW_CIRCUITS):
            assert worker.identity is not None
            started = self.vt.now
            relay = self.world.probe(worker.identity, 60.0)
            self.limiter.observe_renewal(self.vt.now - started)
            if relay is None:
                self._renew(worker)
                continue
            taken = {r.fingerprint for i, r in self.exits.items() if i != worker.index}
            verdict = self.limiter.acquire(relay.fingerprint, taken=taken)
            if verdict.decision is Decision.GO:
                self.exits[worker.index] = relay
                return
            if verdict.decision is Decision.RENEW:
                self._renew(worker)
                continue
            self.vt.spend(verdict.wait_s or max(self.limiter.wait_until_any(), 0.05), "wait")
        raise RunStopped

    def after_video(self, worker: SimWorker) -> None:
        return None

    def on_blocked(self, worker: SimWorker, error: BlockedError) -> bool:
        relay = self.exits.pop(worker.index, None)
        if relay is not None:
            self.limiter.cool_down(relay.fingerprint)
            cooling = self.limiter.cooling()
            if self.world.exit_pool() <= cooling.keys():
                del cooling[min(cooling, key=cooling.__getitem__)]
            self.world.exclude(cooling)
        self._renew(worker)
        return True

    def _renew(self, worker: SimWorker) -> None:
        assert worker.identity is not None
        self.world.release(worker.identity)
        worker.renew()


class NewnymRotation:
    """One circuit shared by every worker; a block sends NEWNYM (at most one per 10 s) and retries."""

    def __init__(self, world: SimWorld, vt: VirtualTime) -> None:
        self.world = world
        self.vt = vt
        self.last_newnym = -NEWNYM_SPACING

    def before_video(self, worker: SimWorker, stop: threading.Event) -> None:
        return None

    def after_video(self, worker: SimWorker) -> None:
        return None

    def on_blocked(self, worker: SimWorker, error: BlockedError) -> bool:
        wait = self.last_newnym + NEWNYM_SPACING - self.vt.now
        if wait > 0:
            self.vt.spend(wait, "wait")
        if self.vt.now - self.last_newnym >= NEWNYM_SPACING:
            self.last_newnym = self.vt.now
            self.world.newnym()
        return True


POLICIES = {"new": run_new, "baseline": run_baseline, "newnym": run_newnym}
