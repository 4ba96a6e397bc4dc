"""Tests for studybuddy.exits: parsing, pacing, budget, cool-down, decisions and thread safety.

Every limiter runs on an injected clock and random source: nothing sleeps.
"""

from __future__ import annotations

import itertools
import threading

import pytest

from studybuddy.egress.exits import Decision, ExitLimiter, ExitStatus, Verdict
from studybuddy.egress.reputation import ExitPace
from studybuddy.units import ExitBudget

A = "A" * 40
B = "B" * 40
C = "C" * 40


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeRandom:
    """A random source returning a fixed value and counting its calls."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.value


def make_limiter(
    clock: FakeClock,
    budget: str = "3/60s",
    *,
    min_interval_s: float = 0.0,
    jitter_s: float = 0.0,
    cooldown_s: float = 300.0,
    random: FakeRandom | None = None,
) -> ExitLimiter:
    return ExitLimiter(
        ExitBudget.parse(budget),
        min_interval_s=min_interval_s,
        jitter_s=jitter_s,
        cooldown_s=cooldown_s,
        clock=clock,
        random=random or FakeRandom(),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# Budget per sliding window


def test_budget_is_enforced_per_sliding_window(clock: FakeClock) -> None:
    limiter = make_limiter(clock, "3/60s")
    limiter.set_exit_pool([A])
    for _ in range(3):
        assert limiter.acquire(A).decision is Decision.GO
        clock.advance(1)
    verdict = limiter.acquire(A)  # t=3: uses at 0, 1, 2
    assert verdict.decision is Decision.WAIT
    assert verdict.wait_s == pytest.approx(57)
    assert "used 3 times in the last 60s" in verdict.reason
    assert limiter.status()[0].uses_in_window == 3  # a refused acquire records nothing

    clock.now = 59.9
    assert limiter.acquire(A).decision is Decision.WAIT
    clock.now = 60.0  # the use at 0 leaves the window
    assert limiter.acquire(A).decision is Decision.GO
    assert limiter.acquire(A).wait_s == pytest.approx(1.0)  # next to leave: the use at 1


def test_exits_have_separate_budgets(clock: FakeClock) -> None:
    limiter = make_limiter(clock, "1/60s")
    assert limiter.acquire(A).decision is Decision.GO
    assert limiter.acquire(B).decision is Decision.GO
    assert limiter.acquire(A).decision is Decision.RENEW
    assert limiter.acquire(B).decision is Decision.RENEW


def test_min_interval_with_jitter(clock: FakeClock) -> None:
    random = FakeRandom(0.5)
    limiter = make_limiter(clock, "100/1h", min_interval_s=10, jitter_s=4, random=random)
    assert limiter.acquire(A).decision is Decision.GO
    assert random.calls == 1

    clock.now = 11.5
    verdict = limiter.acquire(A)
    assert verdict.decision is Decision.WAIT  # a short wait beats a new circuit
    assert verdict.wait_s == pytest.approx(0.5)  # 10 + 4 * 0.5 = 12
    assert "minimum interval" in verdict.reason
    assert random.calls == 1  # jitter is drawn only for a granted use

    clock.now = 12.0
    assert limiter.acquire(A).decision is Decision.GO
    random.value = 0.0
    clock.now = 30.0
    assert limiter.acquire(A).decision is Decision.GO
    clock.now = 39.9
    assert limiter.acquire(A).wait_s == pytest.approx(0.1)  # no jitter this time: 30 + 10


def test_min_interval_is_shared_by_workers_on_one_exit(clock: FakeClock) -> None:
    limiter = make_limiter(clock, "100/1h", min_interval_s=10)
    assert limiter.acquire(A).decision is Decision.GO
    assert limiter.acquire(A).decision is not Decision.GO  # the second worker on A
    assert limiter.acquire(B).decision is Decision.GO  # but B is independent


# Cool-down


def test_cool_down_and_expiry(clock: FakeClock) -> None:
    limiter = make_limiter(clock, cooldown_s=300)
    limiter.cool_down(A)
    assert A in limiter.cooling()
    assert B not in limiter.cooling()
    assert limiter.cooling() == {A: 300.0}

    clock.advance(100)
    assert limiter.cooling() == {A: 200.0}
    verdict = limiter.acquire(A)
    assert verdict == Verdict(Decision.RENEW, 0.0, "cooling down after a block, 200s left")

    clock.advance(200)
    assert limiter.cooling() == {}
    assert A not in limiter.cooling()
    assert limiter.acquire(A).decision is Decision.GO


def test_cool_down_with_explicit_seconds_never_shortens_a_longer_one(clock: FakeClock) -> None:
    limiter = make_limiter(clock, cooldown_s=300)
    limiter.cool_down(A, 50)
    assert limiter.cooling() == {A: 50.0}
    limiter.cool_down(A, 600)
    limiter.cool_down(A, 10)
    assert limiter.cooling() == {A: 600.0}


def test_negative_settings_are_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        make_limiter(clock, min_interval_s=-1)
    with pytest.raises(ValueError, match="cannot be negative"):
        make_limiter(clock).cool_down(A, -5)


# RENEW or WAIT


def test_blocked_exit_renews_while_pool_is_unknown(clock: FakeClock) -> None:
    limiter = make_limiter(clock, "1/60s")
    limiter.acquire(A)
    limiter.cool_down(B)
    assert limiter.acquire(A).decision is Decision.RENEW  # a fresh exit is assumed available
    assert limiter.acquire(B).decision is Decision.RENEW


def test_blocked_exit_renews_when_another_pool_exit_could_serve(clock: FakeClock) -> None:
    limiter = make_limiter(clock, "1/60s")
    limiter.set_exit_pool([A, B])
    limiter.cool_down(A)
    assert limiter.acquire(A).decision is Decision.RENEW  # B was never used
    limiter.acquire(B)
    assert limiter.acquire(A).decision is Decision.WAIT  # B is out of budget now


def test_blocked_exit_waits_for_the_first_exit_to_free_when_none_could_serve(clock: FakeClock) -> None:
    limiter = make_limiter(clock, "1/60s", min_interval_s=1)
    limiter.set_exit_pool([A, B, C])
    limiter.cool_down(A, 300)
    limiter.cool_down(B, 120)
    limiter.acquire(C)  # C frees at 60
    verdict = limiter.acquire(A)
    assert verdict.decision is Decision.WAIT
    assert verdict.wait_s == pytest.approx(60)  # then asking again gives RENEW
    assert verdict.reason.endswith(
        "every other exit is cooling down, out of budget or in use by another worker"
    )
    clock.advance(60)
    assert limiter.acquire(A).decision is Decision.RENEW


def test_only_exit_of_the_pool_waits_for_itself(clock: FakeClock) -> None:
    limiter = make_limiter(clock, cooldown_s=90)
    limiter.set_exit_pool([A])
    limiter.cool_down(A)
    verdict = limiter.acquire(A)
    assert (verdict.decision, verdict.wait_s) == (Decision.WAIT, 90.0)
    assert verdict.reason == (
        "cooling down after a block, 90s left; "
        "every other exit is cooling down, out of budget or in use by another worker"
    )


def test_an_exhausted_exit_is_waited_for_when_it_frees_sooner_than_a_new_circuit_finds_another(
    clock: FakeClock,
) -> None:
    limiter = make_limiter(clock, "2/30s", min_interval_s=10)
    limiter.set_exit_pool([A, B])
    limiter.observe_renewal(5.0)  # half the new circuits land on B: about 10 s to find it
    limiter.acquire(A)
    clock.now = 10
    limiter.acquire(A)
    clock.now = 25  # the use at 0 leaves the window at 30: 5 s
    verdict = limiter.acquire(A)
    assert (verdict.decision, verdict.wait_s) == (Decision.WAIT, pytest.approx(5))
    clock.now = 15  # (asking earlier: 15 s left, and B is free)
    assert limiter.acquire(A).decision is Decision.RENEW


# What a new circuit costs, against waiting


def test_renewal_cost_is_the_median_of_the_last_few_measured(clock: FakeClock) -> None:
    limiter = make_limiter(clock)
    assert limiter.renewal_cost_s == 1.0  # the guess, before anything was measured
    limiter.observe_renewal(0.2)
    assert limiter.renewal_cost_s == pytest.approx(0.2)  # one measurement replaces the guess
    for seconds in (0.1, 9.0, 0.3, float("nan"), -1.0):
        limiter.observe_renewal(seconds)
    assert limiter.renewal_cost_s == pytest.approx(0.25)  # one slow circuit is not the norm
    for _ in range(5):
        limiter.observe_renewal(2.0)
    assert limiter.renewal_cost_s == pytest.approx(2.0)  # only the last few count


def test_an_exit_that_frees_sooner_than_a_new_circuit_is_waited_for(clock: FakeClock) -> None:
    limiter = make_limiter(clock, "1/60s")
    limiter.set_exit_pool([A, B, C])
    limiter.acquire(A)
    clock.now = 58  # A frees in 2 s; a new circuit finds B or C with p = 2/3: 1 s / (2/3) = 1.5 s
    assert limiter.acquire(A).decision is Decision.RENEW
    clock.now = 59.5  # 0.5 s left: waiting is cheaper
    verdict = limiter.acquire(A)
    assert (verdict.decision, verdict.wait_s) == (Decision.WAIT, pytest.approx(0.5))
    assert verdict.reason.endswith("free again sooner than a new circuit (~1.5s)")


def test_measured_renewal_cost_moves_the_line_between_waiting_and_renewing(clock: FakeClock) -> None:
    limiter = make_limiter(clock, "1/60s")
    limiter.set_exit_pool([A, B])
    limiter.acquire(A)
    clock.now = 59.7  # 0.3 s left; the guess (1 s, p = 1/2) says a new circuit takes 2 s
    assert limiter.acquire(A).decision is Decision.WAIT
    limiter.observe_renewal(0.1)  # measured: 0.1 s / (1/2) = 0.2 s
    assert limiter.acquire(A).decision is Decision.RENEW


def test_exits_other_workers_are_on_do_not_count_as_free(clock: FakeClock) -> None:
    limiter = make_limiter(clock, "1/60s")
    limiter.set_exit_pool([A, B])
    limiter.acquire(A)
    clock.now = 30
    assert limiter.acquire(A).decision is Decision.RENEW  # B is free
    verdict = limiter.acquire(A, taken={B})  # B's budget belongs to the worker on it
    assert (verdict.decision, verdict.wait_s) == (Decision.WAIT, pytest.approx(30))
    assert verdict.reason.endswith("in use by another worker")


def test_a_worker_sharing_its_exit_moves_when_another_is_free(clock: FakeClock) -> None:
    limiter = make_limiter(clock, "2/60s")
    limiter.set_exit_pool([A, B, C])
    limiter.acquire(A)
    limiter.acquire(A)  # two workers on A spend its budget twice as fast
    clock.now = 59.9  # A frees in 0.1 s: alone on it, a worker waits...
    assert limiter.acquire(A).decision is Decision.WAIT
    verdict = limiter.acquire(A, taken={A})  # ...but sharing it, one moves to B or C
    assert (verdict.decision, verdict.reason) == (
        Decision.RENEW,
        "used 2 times in the last 60s; another worker shares this exit and one is free",
    )
    assert limiter.acquire(A, taken={A, B, C}).decision is Decision.WAIT  # nowhere to go


def test_a_worker_sharing_its_exit_moves_instead_of_waiting_out_its_interval(clock: FakeClock) -> None:
    limiter = make_limiter(clock, "5/60s", min_interval_s=30)
    limiter.set_exit_pool([A, B])
    limiter.acquire(A)
    clock.now = 1
    assert limiter.acquire(A).decision is Decision.RENEW  # B can serve long before A's interval is over
    limiter.observe_renewal(20.0)
    assert limiter.acquire(A).decision is Decision.WAIT  # unless new circuits take that long
    assert limiter.acquire(A, taken={A}) == Verdict(
        Decision.RENEW, 0.0, "minimum interval, 29.0s left; another worker shares this exit and one is free"
    )
    assert limiter.acquire(A, taken={A, B}).decision is Decision.WAIT  # B has its own worker


# Introspection and memory


def test_status_lists_every_remembered_exit(clock: FakeClock) -> None:
    limiter = make_limiter(clock, "3/60s", min_interval_s=10)
    limiter.acquire(A)
    limiter.cool_down(B, 30)
    clock.advance(5)
    budget = ExitBudget(3, 60.0)
    assert limiter.status() == [ExitStatus(A, 1, budget, 5.0, 0.0), ExitStatus(B, 0, budget, 0.0, 25.0)]


def test_wait_until_any(clock: FakeClock) -> None:
    limiter = make_limiter(clock, "1/60s", min_interval_s=10)
    assert limiter.wait_until_any() == 0.0  # nothing known: nothing to wait for
    limiter.acquire(A)
    limiter.cool_down(B, 30)
    clock.advance(5)
    assert limiter.wait_until_any() == pytest.approx(25)  # B cools at 30, A's budget frees at 60
    limiter.set_exit_pool([A, B, C])
    assert limiter.wait_until_any() == 0.0  # C is in the pool and unused


def test_idle_exits_are_forgotten(clock: FakeClock) -> None:
    limiter = make_limiter(clock, "5/60s", min_interval_s=10, cooldown_s=100)
    for index in range(1000):
        limiter.acquire(f"{index:040X}")
    limiter.cool_down(A)
    assert len(limiter.status()) == 1001
    clock.now = 60.0
    assert [status.fp for status in limiter.status()] == [A]
    clock.now = 100.0
    assert limiter.status() == []


# Thread safety


class PerThreadClock:
    """A clock that ticks on every reading and remembers, per thread, the last reading it gave.

    `ExitLimiter` reads the clock once per call under its lock, so after a GO the calling thread's last
    reading is the time its use was recorded at.
    """

    def __init__(self, tick: float) -> None:
        self._tick = tick
        self._now = 0.0
        self._lock = threading.Lock()
        self._local = threading.local()

    def __call__(self) -> float:
        with self._lock:
            self._now += self._tick
            self._local.last = self._now
            return self._now

    @property
    def last_reading(self) -> float:
        return float(self._local.last)


@pytest.mark.parametrize(("min_interval_s", "jitter_s"), [(0.0, 0.0), (0.5, 1.0)])
def test_many_threads_never_exceed_the_budget_or_the_interval(min_interval_s: float, jitter_s: float) -> None:
    threads_count, attempts, tick = 16, 400, 0.01  # 6400 clock readings: 64 s, several 10 s windows
    budget = ExitBudget(5, 10.0)
    clock = PerThreadClock(tick)
    limiter = ExitLimiter(
        budget,
        min_interval_s=min_interval_s,
        jitter_s=jitter_s,
        cooldown_s=0,
        clock=clock,
        random=lambda: 0.5,
    )
    grants: dict[str, list[float]] = {A: [], B: []}
    grants_lock = threading.Lock()
    start = threading.Barrier(threads_count)

    def hammer(worker: int) -> None:
        start.wait()
        for attempt in range(attempts):
            exit_fp = (A, B)[(worker + attempt) % 2]
            if limiter.acquire(exit_fp).decision is Decision.GO:
                granted_at = clock.last_reading
                with grants_lock:
                    grants[exit_fp].append(granted_at)

    workers = [threading.Thread(target=hammer, args=(index,)) for index in range(threads_count)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in workers)

    interval = min_interval_s + jitter_s * 0.5
    for times in grants.values():
        times.sort()
        assert len(times) >= 30  # the budget is used, not just respected: ~6 windows of 5
        for first, last in zip(times, times[budget.count :], strict=False):
            assert last - first >= budget.window_s - 1e-9  # count + 1 grants never fit in one window
        for earlier, later in itertools.pairwise(times):
            assert later - earlier >= interval - 1e-9


def test_replayed_uses_of_an_earlier_run_keep_the_budget() -> None:
    clock = FakeClock()
    limiter = ExitLimiter(ExitBudget(2, 600), min_interval_s=10, jitter_s=0, cooldown_s=1800, clock=clock)
    limiter.replay_use(A, seconds_ago=700)  # outside the window: forgotten
    limiter.replay_use(A, seconds_ago=100)
    limiter.replay_use(A, seconds_ago=50)
    assert limiter.acquire(A).decision is not Decision.GO  # budget of 2 already spent
    assert limiter.uses_in_window(A) == 2
    clock.advance(501)  # the first replayed use leaves the window
    assert limiter.acquire(A).decision is Decision.GO


def test_each_exit_carries_its_own_pace(clock: FakeClock) -> None:
    paces = {A: ExitPace(1, 30.0), B: ExitPace(3, 0.0)}
    limiter = ExitLimiter(
        ExitBudget(3, 60), min_interval_s=0, jitter_s=0, cooldown_s=300, clock=clock, pace=paces.__getitem__
    )
    assert limiter.acquire(A).decision is Decision.GO
    assert limiter.acquire(A).decision is not Decision.GO  # paced down to one per window
    assert [limiter.acquire(B).decision for _ in range(3)] == [Decision.GO] * 3
    assert {s.fp: s.budget.count for s in limiter.status()} == {A: 1, B: 3}


class AllBut:
    """An opinion of exits: all acceptable but one."""

    def __init__(self, rejected: str) -> None:
        self.rejected = rejected

    def acceptable(self, exit_fp: str) -> bool:
        return exit_fp != self.rejected

    def exceptions(self) -> frozenset[str]:
        return frozenset({self.rejected})

    def unknown_acceptable(self) -> bool:
        return True


def test_exits_that_are_not_acceptable_do_not_count_as_free(clock: FakeClock) -> None:
    limiter = ExitLimiter(
        ExitBudget(1, 600),
        min_interval_s=0,
        jitter_s=0,
        cooldown_s=300,
        clock=clock,
        opinion=AllBut(B),  # B is known to be blocked
    )
    limiter.set_exit_pool([A, B])
    assert limiter.acquire(A).decision is Decision.GO
    verdict = limiter.acquire(A)  # out of budget, and the only other exit would be turned down
    assert verdict.decision is Decision.WAIT
    assert verdict.wait_s == pytest.approx(600)
    assert limiter.wait_until_any() == pytest.approx(600)


def test_ready_now_lists_the_exits_usable_at_once_least_used_first(clock: FakeClock) -> None:
    limiter = make_limiter(clock, "2/60s", min_interval_s=10.0)
    limiter.acquire("busy")
    clock.advance(11)
    limiter.acquire("busy")  # its budget (2) is spent
    limiter.acquire("once")
    limiter.cool_down("cold")
    clock.advance(11)
    assert limiter.ready_now(["busy", "once", "cold", "fresh"]) == ["fresh", "once"]
    limiter.acquire("once")  # spent too
    clock.advance(40)  # busy's first use leaves the window
    assert limiter.ready_now(["once", "busy", "fresh"]) == ["fresh", "busy"]
