"""TorPacer's decisions with a fake controller and scripted probes (the real Tor path is in test_e2e_tor)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from studybuddy import pacing
from studybuddy.config import Settings
from studybuddy.errors import BlockedError, TorError
from studybuddy.exits import ExitBudget, ExitLimiter
from studybuddy.pacing import TorPacer
from studybuddy.pipeline import RunStopped, Worker, WorkerFactory
from studybuddy.progress import ProgressMonitor
from studybuddy.sessions import Identity, ProxyEndpoint
from studybuddy.tor import ExitRelay

A, B, C = (ExitRelay(letter * 40, f"exit{letter}", "127.0.0.2") for letter in "ABC")


class FakeTor:
    def __init__(self, exits: list[ExitRelay]) -> None:
        self.exits = exits
        self.excluded: list[list[str]] = []
        self.closed: list[str] = []
        self.stream_exits: dict[str, ExitRelay] = {}
        self.newnyms = 0

    def newnym(self) -> bool:
        self.newnyms += 1
        return True

    def exit_fingerprints(self) -> list[str]:
        return [relay.fingerprint for relay in self.exits]

    def set_excluded_exits(self, fingerprints: list[str]) -> None:
        self.excluded.append(sorted(fingerprints))

    def close_circuits_of(self, username: str) -> int:
        self.closed.append(username)
        return 1

    def exit_for(self, username: str) -> ExitRelay | None:
        return self.stream_exits.get(username)


class Probes:
    """Scripted answers of `probe_exit`: the exit each (worker, generation) lands on; None = no stream."""

    def __init__(self, script: dict[tuple[int, int], ExitRelay | None]) -> None:
        self.script = script
        self.calls: list[str] = []

    def __call__(
        self, tor: FakeTor, identity: Identity, proxy: ProxyEndpoint, **_: object
    ) -> ExitRelay | None:
        self.calls.append(identity.username)
        relay = self.script[(identity.worker, identity.generation)]
        if relay is not None:
            tor.stream_exits[identity.username] = relay
        return relay


def setup(
    monkeypatch: pytest.MonkeyPatch,
    script: dict[tuple[int, int], ExitRelay | None],
    *,
    budget: str = "1/60s",
    exits: list[ExitRelay] | None = None,
    max_renewals: int = 3,
    prepare_circuits: bool = False,
) -> tuple[TorPacer, FakeTor, Callable[[], Worker], list[tuple[str, str]], ProgressMonitor]:
    tor = FakeTor(exits or [A, B, C])
    monkeypatch.setattr(pacing, "probe_exit", Probes(script))
    limiter = ExitLimiter(ExitBudget.parse(budget), min_interval_s=0, jitter_s=0, cooldown_s=600)
    monitor = ProgressMonitor()
    monitor.start(["vid00000001"], 2)
    events: list[tuple[str, str]] = []
    pacer = TorPacer(
        tor,  # type: ignore[arg-type]
        limiter,
        monitor,
        max_renewals=max_renewals,
        on_event=lambda fp, event: events.append((fp[0], event)),
        prepare_circuits=prepare_circuits,
    )
    factory = WorkerFactory(Settings(), proxy=ProxyEndpoint("127.0.0.1", 9050), run_id="run")
    return pacer, tor, factory, events, monitor


def test_fresh_exit_goes_and_the_worker_row_shows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer, _tor, factory, events, monitor = setup(monkeypatch, {(0, 0): A})
    worker = factory()
    pacer.before_video(worker, threading.Event())
    assert pacer.exit_of(worker) == A.fingerprint
    assert events == [("A", "use")]
    assert monitor.snapshot().workers[0].exit_label == A.label


def test_exhausted_exit_renews_only_that_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer, tor, factory, events, _ = setup(monkeypatch, {(0, 0): A, (1, 0): A, (1, 1): B})
    first, second = factory(), factory()
    pacer.before_video(first, threading.Event())
    pacer.before_video(second, threading.Event())  # A's budget (1) is spent: second renews onto B
    assert (first.identity and first.identity.generation, second.identity and second.identity.generation) == (
        0,
        1,
    )
    assert tor.closed == ["sb-run-w1-g0"]
    assert pacer.exit_of(second) == B.fingerprint
    assert events == [("A", "use"), ("B", "use")]


def test_the_next_circuit_is_prepared_while_a_video_is_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    script = {(0, 0): A, (0, 1): B, (0, 2): C}
    pacer, _tor, factory, events, _ = setup(monkeypatch, script, prepare_circuits=True)
    probes = pacing.probe_exit
    assert isinstance(probes, Probes)
    worker = factory()
    upcoming = worker.next_identity
    assert upcoming is not None
    pacer.before_video(worker, threading.Event())  # GO on A; Tor builds generation 1's circuit meanwhile
    deadline = time.monotonic() + 5
    while upcoming.username not in probes.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert probes.calls == ["sb-run-w0-g0", "sb-run-w0-g1"]
    pacer.before_video(worker, threading.Event())  # A is spent: the worker moves to the prepared identity
    assert worker.identity == upcoming
    assert probes.calls[:4] == ["sb-run-w0-g0", "sb-run-w0-g1", "sb-run-w0-g0", "sb-run-w0-g1"]
    assert events == [("A", "use"), ("B", "use")]


def test_what_each_new_circuit_costs_reaches_the_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer, _tor, factory, _events, _ = setup(monkeypatch, {(0, 0): A, (0, 1): B})
    slow = pacing.probe_exit

    def probe_taking_50_ms(*args: object, **kwargs: object) -> ExitRelay | None:
        time.sleep(0.05)
        return slow(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pacing, "probe_exit", probe_taking_50_ms)
    worker = factory()
    assert pacer.limiter.renewal_cost_s == 1.0  # the guess
    pacer.before_video(worker, threading.Event())  # a worker's first circuit is a new one
    pacer.before_video(worker, threading.Event())  # A is spent (1/60s): renews onto B
    assert 0.04 <= pacer.limiter.renewal_cost_s < 0.5


def test_a_worker_sharing_its_exit_moves_to_a_free_one(monkeypatch: pytest.MonkeyPatch) -> None:
    script = {(0, 0): A, (1, 0): A, (0, 1): B}
    pacer, _tor, factory, events, _ = setup(monkeypatch, script, budget="2/1s")
    first, second = factory(), factory()
    pacer.before_video(first, threading.Event())
    pacer.before_video(second, threading.Event())  # A is spent for < 1 s
    for _ in range(5):
        pacer.limiter.observe_renewal(5.0)  # new circuits are slow here: alone on A, first would wait
    pacer.before_video(first, threading.Event())  # sharing A with second, it moves while B is free
    assert first.identity is not None
    assert first.identity.generation == 1
    assert pacer.exit_of(first) == B.fingerprint
    assert events == [("A", "use"), ("A", "use"), ("B", "use")]


def test_block_cools_the_exit_excludes_it_and_renews(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer, tor, factory, events, _ = setup(monkeypatch, {(0, 0): A, (0, 1): C}, budget="5/60s")
    worker = factory()
    pacer.before_video(worker, threading.Event())
    pacer.on_blocked(worker, BlockedError("vid00000001", "bot check"))
    assert tor.excluded == [[A.fingerprint]]
    assert worker.identity is not None and worker.identity.generation == 1
    pacer.before_video(worker, threading.Event())
    assert pacer.exit_of(worker) == C.fingerprint
    assert events == [("A", "use"), ("A", "block"), ("C", "use")]


def test_a_move_gives_a_new_circuit_without_blaming_the_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer, tor, factory, events, _ = setup(monkeypatch, {(0, 0): A, (0, 1): C}, budget="5/60s")
    worker = factory()
    pacer.before_video(worker, threading.Event())
    pacer.move(worker)  # e.g. the video is not available in the exit's country
    assert worker.identity is not None and worker.identity.generation == 1
    assert tor.closed == ["sb-run-w0-g0"]
    assert tor.excluded == [] and pacer.limiter.cooling() == {}
    pacer.before_video(worker, threading.Event())
    assert pacer.exit_of(worker) == C.fingerprint
    assert events == [("A", "use"), ("C", "use")]


def test_never_excludes_every_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    script = {(0, g): relay for g, relay in enumerate([A, B, C, C])}
    pacer, tor, factory, _, _ = setup(monkeypatch, script, budget="5/60s")
    worker = factory()
    for _ in range(3):
        pacer.before_video(worker, threading.Event())
        pacer.on_blocked(worker, BlockedError("vid00000001", "429"))
    assert [len(excluded) for excluded in tor.excluded] == [1, 2, 2]
    assert A.fingerprint not in tor.excluded[-1]  # the one that cools off first stays allowed


def test_waits_when_no_exit_can_serve_and_stops_with_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer, _tor, factory, _, _ = setup(monkeypatch, {(0, 0): A, (1, 0): A}, exits=[A])
    pacer.before_video(factory(), threading.Event())
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    with pytest.raises(RunStopped):
        pacer.before_video(factory(), stop)  # A is spent and is the only exit: wait, not renew


def test_no_circuit_reaching_youtube_renews_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer, tor, factory, _, _ = setup(monkeypatch, dict.fromkeys(((0, g) for g in range(4)), None))
    worker = factory()
    with pytest.raises(TorError, match=r"no Tor circuit reached www\.youtube\.com in 4 tries"):
        pacer.before_video(worker, threading.Event())
    assert len(tor.closed) == 3
    assert tor.newnyms == 1  # the last resort, once


def test_newnym_is_never_the_routine(monkeypatch: pytest.MonkeyPatch) -> None:
    script = {(0, 0): None, (0, 1): None, (0, 2): A}
    pacer, tor, factory, _, _ = setup(monkeypatch, script, max_renewals=10)
    pacer.before_video(factory(), threading.Event())  # two failed circuits, then one reaches YouTube
    assert (len(tor.closed), tor.newnyms) == (2, 0)


def test_a_stream_that_moved_exit_is_counted_there_too(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer, tor, factory, events, _ = setup(monkeypatch, {(0, 0): A}, budget="5/60s")
    worker = factory()
    pacer.before_video(worker, threading.Event())
    assert worker.identity is not None
    tor.stream_exits[worker.identity.username] = B  # dirtiness or conflux moved the stream
    pacer.after_video(worker)
    assert events == [("A", "use"), ("B", "use")]
    assert [status.uses_in_window for status in pacer.limiter.status()] == [1, 1]
