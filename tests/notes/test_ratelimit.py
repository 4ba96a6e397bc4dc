"""Tests for studybuddy.ratelimit: one concurrency cap and one per-minute budget shared by all threads."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from studybuddy.notes.ratelimit import RequestLimiter


class FakeClock:
    """A clock that only moves when someone sleeps; thread-safe."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


def limiter_with(clock: FakeClock, max_concurrent: int, per_minute: int) -> RequestLimiter:
    return RequestLimiter(max_concurrent, per_minute, clock=clock.now, sleep=clock.sleep)


def run_in_threads(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
        assert not thread.is_alive()


class WatchedSemaphore(threading.BoundedSemaphore):
    """The limiter's slots, telling how many threads are inside `acquire` (waiting for a slot)."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.changed = threading.Condition()
        self.waiting = 0

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        self._count(+1)
        try:
            return super().acquire(blocking, timeout)
        finally:
            self._count(-1)

    def _count(self, change: int) -> None:
        with self.changed:
            self.waiting += change
            self.changed.notify_all()


def test_concurrent_calls_never_exceed_the_cap() -> None:
    slots: list[WatchedSemaphore] = []

    def watched(value: int) -> WatchedSemaphore:
        slots.append(WatchedSemaphore(value))
        return slots[-1]

    clock = FakeClock()
    limiter = RequestLimiter(3, 1000, clock=clock.now, sleep=clock.sleep, semaphore=watched)
    state = threading.Condition()
    release = threading.Event()
    active, peak, finished = 0, 0, 0

    def call() -> None:
        nonlocal active, peak, finished
        with limiter:
            with state:
                active += 1
                peak = max(peak, active)
                state.notify_all()
            release.wait(timeout=5)
            with state:
                active -= 1
                finished += 1

    threads = [threading.Thread(target=call, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    (semaphore,) = slots
    with semaphore.changed:  # every thread is accounted for: five wait for a slot...
        assert semaphore.changed.wait_for(lambda: semaphore.waiting == 5, timeout=5)
    with state:  # ... while three hold one
        assert state.wait_for(lambda: active == 3, timeout=5)
    release.set()
    for thread in threads:
        thread.join(timeout=5)
    assert finished == 8
    assert peak == 3


def test_the_per_minute_budget_is_shared_by_all_threads() -> None:
    clock = FakeClock()
    limiter = limiter_with(clock, max_concurrent=8, per_minute=5)

    def call() -> None:
        with limiter:
            pass

    run_in_threads(call, 5)  # five threads, one call each: the whole minute's budget
    assert clock.sleeps == []
    run_in_threads(call, 1)  # a sixth thread that never called before still has to wait
    assert clock.sleeps == [60.0]


def test_the_window_slides() -> None:
    clock = FakeClock()
    limiter = limiter_with(clock, max_concurrent=1, per_minute=2)
    for _ in range(2):
        with limiter:
            pass
    clock.advance(30)
    with limiter:  # the two calls at t=0 leave the window at t=60
        pass
    assert clock.sleeps == [30.0]
    with limiter:  # at t=60 only the call just made is in the window
        pass
    assert clock.sleeps == [30.0]


def test_a_slot_is_given_back_when_the_call_fails_or_the_wait_is_interrupted() -> None:
    clock = FakeClock()
    interrupted = [True]

    def sleep(seconds: float) -> None:
        if interrupted[0]:
            raise KeyboardInterrupt
        clock.sleep(seconds)

    limiter = RequestLimiter(1, 1, clock=clock.now, sleep=sleep)
    with pytest.raises(RuntimeError), limiter:
        raise RuntimeError("the API call failed")
    with pytest.raises(KeyboardInterrupt), limiter:  # out of budget: the wait is interrupted
        pass
    interrupted[0] = False

    def call() -> None:
        with limiter:
            pass

    run_in_threads(call, 1)  # would hang if either slot had leaked
    assert clock.sleeps == [60.0]


@pytest.mark.parametrize(("max_concurrent", "per_minute"), [(0, 10), (1, 0)])
def test_limits_must_be_positive(max_concurrent: int, per_minute: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RequestLimiter(max_concurrent, per_minute)
