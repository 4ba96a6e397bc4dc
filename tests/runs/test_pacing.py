"""TorPacer's decisions against a scripted `ExitNetwork` and a clock the test moves (nothing sleeps).

The real Tor path is in test_e2e_tor and test_e2e_hostile; the simulator (scripts/simulate) runs the same
pacer against a thousand simulated exits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import pytest

from studybuddy.config import Settings
from studybuddy.egress.reputation import new_reputation
from studybuddy.egress.sessions import LISTER, Identity, ProxyEndpoint
from studybuddy.egress.tor import ExitRelay
from studybuddy.egress.trials import warm_trials
from studybuddy.errors import BlockedError, TorError
from studybuddy.runs.pacing import TorPacer, build_pacer
from studybuddy.runs.progress import ProgressMonitor
from studybuddy.runs.workers import RunStopped, Worker, WorkerFactory
from studybuddy.store.exit_records import Standing
from studybuddy.timebase import Task
from studybuddy.units import ExitBudget

A, B, C, D = (ExitRelay(letter * 40, f"exit{letter}", "127.0.0.2") for letter in "ABCD")
Script = dict[tuple[int, int], ExitRelay | None]


class ManualTime:
    """A `Timebase` whose clock moves only when something sleeps or a test says so; background tasks run
    at once, to the end, in the caller's thread."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        self.slept.append(seconds)
        self.now += seconds
        return stop.is_set()

    def start(self, target: Callable[[], None], name: str) -> Task:
        target()
        return Finished()

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Finished:
    def join(self, timeout: float | None = None) -> None:
        return None


class ScriptedNetwork:
    """Which exit each (worker, generation) lands on (None: no stream), and which exit really carried an
    identity's answers (by default the one it landed on). Records what the pacer asked of it."""

    def __init__(self, script: Script, clock: ManualTime, *, exits: list[ExitRelay], build_s: float = 0.0):
        self.script = script
        self.clock = clock
        self.build_s = build_s
        self.pool = frozenset(relay.fingerprint for relay in exits)
        self.private = False
        self.probes: list[str] = []
        self.released: list[str] = []
        self.excluded: list[dict[str, float]] = []
        self.newnyms = 0
        self.landed: dict[str, ExitRelay] = {}
        self.carriers: dict[str, ExitRelay] = {}

    def exit_pool(self) -> frozenset[str]:
        return self.pool

    def probe(self, identity: Identity, timeout_s: float) -> ExitRelay | None:
        if identity.username not in self.probes:
            self.clock.advance(self.build_s)  # building the circuit
        self.probes.append(identity.username)
        relay = self.script[(identity.worker, identity.generation)]
        if relay is not None:
            self.landed[identity.username] = relay
        return relay

    def unreachable_exit(self, identity: Identity) -> ExitRelay | None:
        return None

    def release(self, identity: Identity) -> None:
        self.released.append(identity.username)

    def exclude(self, cooling: Mapping[str, float]) -> None:
        self.excluded.append(dict(cooling))

    def refresh(self) -> None:
        return None

    def newnym(self) -> bool:
        self.newnyms += 1
        return True

    def carrier(self, identity: Identity, source: tuple[str, int] | None) -> ExitRelay | None:
        return self.carriers.get(identity.username) or self.landed.get(identity.username)


class Bed:
    def __init__(self, script: Script, *, budget: str, exits: list[ExitRelay], spares: bool, build_s: float):
        self.time = ManualTime()
        self.network = ScriptedNetwork(script, self.time, exits=exits, build_s=build_s)
        self.monitor = ProgressMonitor(clock=self.time.monotonic)
        self.monitor.start(["vid00000001"], 2)
        self.events: list[tuple[str, str]] = []
        settings = Settings(
            per_exit=ExitBudget.parse(budget), exit_interval_s=0.0, exit_cooldown_s=600.0, max_rotations=2
        )
        self.pacer: TorPacer = build_pacer(
            self.network,
            settings,
            self.monitor,
            store=None,
            on_event=lambda fp, event: self.events.append((fp[0], event)),
            timebase=self.time,
            random=lambda: 0.0,
        )
        if not spares:
            self.pacer.close()
        self.factory = WorkerFactory(settings, proxy=ProxyEndpoint("127.0.0.1", 9050), run_id="run")

    def worker(self) -> Worker:
        return self.factory()

    def go(self, worker: Worker, stop: threading.Event | None = None) -> ExitRelay:
        self.pacer.before_video(worker, stop or threading.Event())
        relay = self.network.landed[worker.identity.username]  # type: ignore[union-attr]
        assert self.pacer.exit_of(worker) == relay.fingerprint
        return relay

    def serve(self, worker: Worker) -> ExitRelay:
        relay = self.go(worker)
        self.pacer.after_video(worker)
        return relay

    def block(self, worker: Worker) -> bool:
        return self.pacer.on_blocked(worker, BlockedError("vid00000001", "bot check"))


def make_bed(
    script: Script,
    *,
    budget: str = "1/60s",
    exits: list[ExitRelay] | None = None,
    spares: bool = False,
    build_s: float = 0.0,
) -> Bed:
    return Bed(script, budget=budget, exits=exits or [A, B, C], spares=spares, build_s=build_s)


def generation(worker: Worker) -> int:
    assert worker.identity is not None
    return worker.identity.generation


def test_a_fresh_exit_goes_and_the_worker_row_shows_it() -> None:
    bed = make_bed({(0, 0): A})
    worker = bed.worker()
    assert bed.go(worker) == A
    assert bed.events == [("A", "use")]
    assert bed.monitor.snapshot().workers[0].exit_label == A.label


def test_an_exhausted_exit_renews_only_that_worker() -> None:
    bed = make_bed({(0, 0): A, (1, 0): A, (1, 1): B})
    first, second = bed.worker(), bed.worker()
    bed.go(first)
    assert bed.go(second) == B  # A's budget (1) is spent
    assert (generation(first), generation(second)) == (0, 1)
    assert bed.network.released == ["sb-run-w1-g0"]
    assert bed.events == [("A", "use"), ("B", "use")]


def test_the_next_circuit_is_built_while_a_video_is_fetched_and_taken_on_renewal() -> None:
    bed = make_bed({(0, 0): A, (0, 1): B, (0, 2): C}, spares=True)
    worker = bed.worker()
    bed.go(worker)  # GO on A; generation 1's circuit is built meanwhile
    assert bed.network.probes == ["sb-run-w0-g0", "sb-run-w0-g1"]
    assert bed.go(worker) == B  # A is spent: the worker moves to the built spare
    assert generation(worker) == 1
    assert bed.network.probes == [
        "sb-run-w0-g0",
        "sb-run-w0-g1",
        "sb-run-w0-g0",
        "sb-run-w0-g1",
        "sb-run-w0-g2",
    ]


def test_a_spare_landing_on_an_exit_known_to_block_is_dropped_before_any_request() -> None:
    script: Script = {(0, 0): A, (0, 1): C, (0, 2): B, (1, 0): C, (1, 1): A}
    bed = make_bed(script, budget="5/60s", spares=True)
    worker, other = bed.worker(), bed.worker()
    assert bed.go(other) == C
    bed.block(other)  # C never served: it is now known to block
    assert bed.go(worker) == A  # meanwhile its spare lands on C: closed, another one built
    assert bed.pacer.reputation.standing(C.fingerprint) is Standing.BAD
    assert "sb-run-w0-g1" in bed.network.released
    bed.block(worker)
    assert generation(worker) == 2
    assert bed.go(worker) == B
    assert [event for event in bed.events if event[0] == "C"] == [("C", "use"), ("C", "block")]


def test_what_a_new_circuit_costs_reaches_the_limiter() -> None:
    bed = make_bed({(0, 0): A, (0, 1): B}, build_s=0.25)
    worker = bed.worker()
    assert bed.pacer.limiter.renewal_cost_s == 1.0  # the guess
    bed.go(worker)  # a worker's first circuit is a new one
    bed.go(worker)  # A is spent (1/60s): renews onto B
    assert bed.pacer.limiter.renewal_cost_s == pytest.approx(0.25)


def test_a_worker_sharing_its_exit_moves_to_a_free_one() -> None:
    bed = make_bed({(0, 0): A, (1, 0): A, (0, 1): B}, budget="2/1s")
    first, second = bed.worker(), bed.worker()
    bed.serve(first)  # A serves: known, no longer on trial
    bed.go(second)  # A is spent for < 1 s
    for _ in range(5):
        bed.pacer.limiter.observe_renewal(5.0)  # new circuits are slow here: alone on A, first would wait
    assert bed.go(first) == B  # sharing A with second, it moves while B is free
    assert bed.events == [("A", "use"), ("A", "use"), ("B", "use")]


def test_an_exit_is_taken_only_while_its_worker_fetches() -> None:
    """A worker that is done with its video (or with all of them) leaves its exit free for the others:
    a worker whose circuit lands on an exit known to block moves on, and does not wait for ever."""
    bed = make_bed({(0, 0): A, (1, 0): C, (1, 1): B, (1, 2): A}, exits=[A, B, C], budget="5/60s")
    done = bed.worker()
    bed.serve(done)  # A serves, and its worker stops
    other = bed.worker()
    assert bed.go(other) == C
    bed.block(other)  # C never served: known to block
    assert bed.go(other) == B  # B is unknown: tried
    bed.block(other)
    assert bed.go(other) == A  # A is free again, though the first worker last used it


def test_a_block_is_charged_to_the_exit_that_carried_the_answer() -> None:
    """The worker was paced on A, but the answer came through B (its stream went another way): B is to
    blame, cooled down and excluded; A is not touched."""
    bed = make_bed({(0, 0): A, (0, 1): C}, budget="5/60s")
    worker = bed.worker()
    bed.go(worker)
    bed.network.carriers["sb-run-w0-g0"] = B
    bed.block(worker)
    assert bed.events == [("A", "use"), ("B", "block")]
    assert list(bed.pacer.limiter.cooling()) == [B.fingerprint]
    assert list(bed.network.excluded[-1]) == [B.fingerprint]
    assert bed.pacer.reputation.record(A.fingerprint).blocked == 0


def test_a_block_counts_against_the_video_only_on_an_exit_that_serves_others() -> None:
    bed = make_bed({(0, 0): A, (0, 1): B, (0, 2): C, (0, 3): A}, budget="5/60s")
    worker = bed.worker()
    bed.go(worker)
    assert bed.block(worker) is False  # A never served anything: it is A's fault
    bed.serve(worker)  # B serves a video
    bed.go(worker)  # B again (within budget)
    assert bed.block(worker) is True  # B serves others: this video may be the problem


def test_an_exit_that_served_cools_down_briefly_one_that_never_did_for_the_full_cool_down() -> None:
    bed = make_bed({(0, 0): A, (0, 1): B, (0, 2): C}, budget="5/60s")
    worker = bed.worker()
    bed.serve(worker)
    bed.go(worker)
    bed.block(worker)  # A served before: a short cool-down (half the budget window, at least 15 s)
    bed.go(worker)
    bed.block(worker)  # B never served: --exit-cooldown
    assert bed.pacer.limiter.cooling() == {
        A.fingerprint: pytest.approx(30),
        B.fingerprint: pytest.approx(600),
    }


def test_a_block_slows_the_exit_and_service_brings_its_pace_back() -> None:
    script: Script = {(0, g): A for g in range(40)}
    bed = make_bed(script, budget="4/60s")
    worker = bed.worker()
    for _ in range(4):
        bed.serve(worker)
    bed.time.advance(61)
    bed.go(worker)
    bed.block(worker)  # blocked at 4 per window: 2 per window from now on, spread evenly
    limits = bed.pacer.reputation.limits(A.fingerprint)
    assert (limits.count, limits.interval_s) == (2, pytest.approx(30))
    paces = []
    for _ in range(8):
        bed.time.advance(60)
        bed.serve(worker)
        paces.append(bed.pacer.reputation.limits(A.fingerprint))
    counts = [pace.count for pace in paces]
    assert counts == sorted(counts) and counts[-1] == 3  # climbs back, capped below the blocked pace
    assert paces[-1].interval_s == pytest.approx(60 / 3.5)  # 3.5 per window, spread evenly


def test_cooling_exits_are_excluded_but_never_all_of_them() -> None:
    bed = make_bed({(0, g): relay for g, relay in enumerate([A, B, C, A])}, budget="5/60s")
    worker = bed.worker()
    for _ in range(3):
        bed.go(worker)
        bed.block(worker)
    assert [len(excluded) for excluded in bed.network.excluded] == [1, 2, 3]  # the network keeps one free


def test_with_a_tor_of_its_own_exits_known_to_block_are_excluded_too() -> None:
    bed = make_bed({(0, 0): A, (0, 1): B}, budget="5/60s")
    bed.network.private = True
    worker = bed.worker()
    bed.go(worker)
    bed.block(worker)
    bed.time.advance(700)  # the cool-down is over, but A is still known to block
    bed.go(worker)
    bed.block(worker)
    assert A.fingerprint in bed.network.excluded[-1]


def test_waits_when_no_exit_can_serve_says_so_and_stops_with_the_run() -> None:
    bed = make_bed({(0, 0): A, (1, 0): A}, exits=[A], budget="1/600s")
    bed.serve(bed.worker())
    stop = threading.Event()
    waiting = bed.worker()

    def stop_after_first_sleep(seconds: float, event: threading.Event) -> bool:
        bed.time.slept.append(seconds)
        stop.set()
        return True

    bed.time.sleep = stop_after_first_sleep  # type: ignore[method-assign]
    with pytest.raises(RunStopped):
        bed.pacer.before_video(waiting, stop)  # A is spent and is the only exit: wait, not renew
    assert bed.time.slept == [pytest.approx(30)]  # the first slice of the wait
    assert "next try in 600 s" in (bed.monitor.snapshot().notice or "")


def test_a_long_wait_is_cut_into_slices_each_announced_with_the_time_left() -> None:
    bed = make_bed({(0, 0): A, (1, 0): A}, exits=[A], budget="1/600s")
    bed.serve(bed.worker())
    stop = threading.Event()
    waiting = bed.worker()
    notices: list[str | None] = []

    def sleep_three_slices(seconds: float, event: threading.Event) -> bool:
        notices.append(bed.monitor.snapshot().notice)
        bed.time.slept.append(seconds)
        bed.time.now += seconds
        if len(bed.time.slept) == 3:
            stop.set()
        return stop.is_set()

    bed.time.sleep = sleep_three_slices  # type: ignore[method-assign]
    with pytest.raises(RunStopped):
        bed.pacer.before_video(waiting, stop)
    assert bed.time.slept == [pytest.approx(30)] * 3
    assert [notice.rsplit("; ", 1)[-1] if notice else None for notice in notices] == [
        "next try in 600 s",
        "next try in 570 s",
        "next try in 540 s",
    ]


def test_only_circuits_failing_in_a_row_give_up_not_a_few_among_many_turned_down() -> None:
    script: Script = {(0, g): (None if g % 2 == 0 else C) for g in range(12)}
    script |= {(0, 12): A, (1, 0): C}
    bed = make_bed(script, budget="5/60s")
    worker, other = bed.worker(), bed.worker()
    bed.go(other)
    bed.block(other)  # C is known to block: every circuit of worker 0 on C is turned down
    assert bed.go(worker) == A  # 6 circuits that reached nothing, never more than one in a row
    assert generation(worker) == 12


def test_a_block_counts_against_the_video_only_while_its_exit_serves() -> None:
    bed = make_bed({(0, 0): A, (0, 1): B, (1, 0): A}, budget="5/60s")
    worker, other = bed.worker(), bed.worker()
    bed.serve(worker)
    bed.go(worker)
    assert bed.block(worker) is True  # A served others: the video may be the problem
    bed.time.advance(61)  # the cool-down (30 s) and the budget window are over
    bed.go(other)
    assert bed.block(other) is False  # A's spell outlasted its cool-down: nothing served since


def test_no_circuit_reaching_youtube_renews_then_gives_up() -> None:
    bed = make_bed(dict.fromkeys(((0, g) for g in range(6)), None))
    with pytest.raises(TorError, match=r"no Tor circuit reached YouTube in 5 tries"):
        bed.pacer.before_video(bed.worker(), threading.Event())
    assert len(bed.network.released) == 4
    assert bed.network.newnyms == 1  # the last resort, once


def test_newnym_is_never_the_routine() -> None:
    bed = make_bed({(0, 0): None, (0, 1): None, (0, 2): A}, budget="5/60s")
    bed.go(bed.worker())  # two failed circuits, then one reaches YouTube
    assert (len(bed.network.released), bed.network.newnyms) == (2, 0)


def test_a_stream_that_moved_exit_is_counted_there_too() -> None:
    bed = make_bed({(0, 0): A}, budget="5/60s")
    worker = bed.worker()
    bed.go(worker)
    bed.network.carriers["sb-run-w0-g0"] = B  # dirtiness moved the stream
    bed.pacer.after_video(worker)
    assert bed.events == [("A", "use"), ("B", "use")]
    assert [status.uses_in_window for status in bed.pacer.limiter.status()] == [1, 1]
    assert bed.pacer.reputation.standing(B.fingerprint) is Standing.GOOD


def test_new_exits_are_tried_ever_more_slowly_while_trials_find_nothing() -> None:
    relays = [ExitRelay(f"{n:040X}", f"exit{n}", None) for n in range(1, 51)]
    script: Script = {(0, g): relays[g] for g in range(50)}
    bed = make_bed(script, budget="5/60s", exits=relays)
    worker = bed.worker()
    for _ in range(45):  # every new exit blocks: the free trials are spent, nothing served earns more
        bed.go(worker)
        bed.block(worker)
    assert bed.pacer.trials.interval_s() == 8  # 0.5 s, doubled for every 5 fruitless trials past 25
    notice = bed.monitor.snapshot().notice
    assert notice == "YouTube is blocking most exits: 0 of the last 10 served; trying new exits every 8 s"
    before = bed.time.now
    assert bed.go(worker) == relays[45]  # the next new exit is tried once its turn has come, not before
    assert bed.time.now - before == pytest.approx(8)
    assert generation(worker) == 45  # waiting for its turn burnt no circuits


def test_a_run_where_nothing_serves_for_long_stops_with_a_clear_line() -> None:
    bed = make_bed({(0, g): A for g in range(30)}, exits=[A], budget="5/60s")
    bed.pacer.stall_after_s = 300
    worker = bed.worker()
    bed.go(worker)
    bed.block(worker)  # A, the only exit, never served: known to block, out for 600 s
    bed.time.advance(301)
    with pytest.raises(
        TorError,
        match=r"no exit served YouTube for 5 min \(1 exit\(s\) tried since\); YouTube seems to block",
    ):
        bed.pacer.before_video(worker, threading.Event())


def test_when_every_exit_has_blocked_they_are_tried_again_once_their_cool_downs_end() -> None:
    bed = make_bed({(0, g): A if g % 2 == 0 else B for g in range(30)}, exits=[A, B], budget="5/60s")
    worker = bed.worker()
    bed.go(worker)
    bed.block(worker)
    assert bed.go(worker) == B
    bed.block(worker)  # both never served: known to block
    started = bed.time.now
    assert bed.go(worker) == A  # nothing else is left: A is tried again once its cool-down is over
    assert bed.time.now - started == pytest.approx(600)


def test_moving_a_worker_blames_nobody() -> None:
    bed = make_bed({(0, 0): A, (0, 1): B}, budget="5/60s")
    worker = bed.worker()
    bed.go(worker)
    bed.pacer.move(worker)
    assert generation(worker) == 1
    assert bed.pacer.limiter.cooling() == {}
    assert bed.network.released == ["sb-run-w0-g0"]
    record = bed.pacer.reputation.record(A.fingerprint)
    assert (record.blocked, record.unreachable) == (0, 0)


def test_a_circuit_left_on_an_exit_that_serves_is_banked_and_handed_to_the_next_worker_that_needs_it() -> (
    None
):
    """Worker 0 leaves A (out of budget) for its spare; A's circuit is kept, and once A may serve again,
    worker 1, whose own circuit lands on an exit nobody knows, takes A's circuit instead of a trial."""
    script: Script = {(0, 0): A, (0, 1): B, (0, 2): C, (1, 0): C}
    bed = make_bed(script, budget="1/60s", spares=True)
    first = bed.worker()
    assert bed.serve(first) == A
    assert bed.go(first) == B  # A is spent: its spare on B (a trial)
    assert "sb-run-w0-g0" not in bed.network.released  # A served: its circuit is banked, not closed
    tried = bed.pacer.trials.tried
    bed.time.advance(61)  # A may serve again
    second = bed.worker()
    assert bed.go(second) == A
    assert second.identity is not None and second.identity.username == "sb-run-w0-g0"  # the same circuit
    assert bed.pacer.trials.tried == tried  # no trial spent on C while A could serve
    assert "sb-run-w1-g0" in bed.network.released  # its own circuit on C is closed


def test_a_released_lister_leaves_no_exit_and_no_worker_row_behind() -> None:
    bed = make_bed({(LISTER, 0): A, (LISTER, 1): B, (0, 0): A}, budget="5/60s", spares=True)
    lister = bed.factory.lister()
    bed.serve(lister)  # a playlist is listed through A
    assert [row.worker for row in bed.monitor.snapshot().workers] == [LISTER]
    bed.pacer.release(lister)
    assert bed.pacer.exit_of(lister) is None
    assert bed.monitor.snapshot().workers == ()
    assert bed.go(bed.worker()) == A  # no pool worker counts A as taken
    assert bed.events == [("A", "use"), ("A", "use")]  # the listing stays counted against A's budget


def test_a_rerun_that_knows_exits_that_serve_starts_on_them_and_earns_its_trials() -> None:
    time_ = ManualTime()
    settings = Settings(per_exit=ExitBudget.parse("5/60s"), exit_interval_s=0.0, exit_cooldown_s=600.0)
    reputation = new_reputation(settings, None, time_)
    new = "E" * 40
    pool = frozenset(relay.fingerprint for relay in (A, B, C, D)) | {new}
    cold = warm_trials(reputation, pool, time_)
    assert cold.may_try() and cold.begin(new)  # nothing known: free trials
    reputation.served(A.fingerprint)
    for bad in (B, C, D):
        reputation.blocked(bad.fingerprint)
    warm = warm_trials(reputation, pool, time_)
    assert warm.interval_s() == 0.5  # 3 of 4 known exits blocked: backed off from the start
    assert warm.begin(new) and not warm.begin(D.fingerprint)  # one try now, the next in 20 s
    time_.advance(20.0)
    assert warm.may_try()
