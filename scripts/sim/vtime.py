"""Virtual time for real threads: a `studybuddy.timebase.Timebase` in which an hour passes in a second.

Every simulated thread runs only when the scheduler hands it the baton; it gives the baton back when it
sleeps (in virtual time), waits for a task, or ends. So exactly one thread runs at a time, in the order of
their virtual wake-up times (ties by arrival), and a run is repeatable. Code under test may take locks (it
never sleeps while holding one), read `monotonic()` and `time()`, and start background tasks.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import Counter
from collections.abc import Callable

EPOCH = 1_750_000_000.0  # the Unix time the simulation starts at
NEVER = threading.Event()  # never set: a sleep nothing interrupts


class _Sleeper:
    """A simulated thread's baton."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.token = 0  # a wake-up is valid only if it carries the current token


class SimTask:
    def __init__(self, vt: VirtualTime) -> None:
        self._vt = vt
        self.done = False
        self.waiters: list[_Sleeper] = []

    def join(self, timeout: float | None = None) -> None:
        if not self.done:
            self._vt.wait_for(self, timeout)


class VirtualTime:
    """The scheduler; `run(main)` drives `main` and every thread it starts until all have ended."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, _Sleeper, int]] = []
        self._seq = itertools.count()
        self._yielded = threading.Event()
        self._local = threading.local()
        self._live = 0
        self._lock = threading.Lock()
        self.spent: Counter[tuple[str, str]] = Counter()  # (thread kind, what) -> virtual seconds

    def spend(self, seconds: float, what: str) -> None:
        """Sleep `seconds` (never interrupted), booked under `what` for the simulator's time ledger."""
        self._book(what, seconds)
        self.sleep(seconds, NEVER)

    def _book(self, what: str, seconds: float) -> None:
        self.spent[(getattr(self._local, "kind", "main"), what)] += seconds

    # -- Timebase ------------------------------------------------------------------------------------

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return EPOCH + self.now

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        if stop.is_set():
            return True
        if stop is not NEVER:
            self._book("wait", seconds)
        me = self._me()
        self._schedule(me, self.now + max(0.0, seconds))
        self._yield(me)
        return stop.is_set()

    def start(self, target: Callable[[], None], name: str) -> SimTask:
        task = SimTask(self)
        self._spawn(target, task, name.split("-", maxsplit=1)[0])
        return task

    # -- the scheduler -------------------------------------------------------------------------------

    def run(self, main: Callable[[], None]) -> None:
        self._spawn(main, SimTask(self), "main")
        while True:
            with self._lock:
                if not self._heap:
                    if self._live:
                        raise RuntimeError("deadlock: live simulated threads, none scheduled")
                    return
                at, _seq, sleeper, token = heapq.heappop(self._heap)
            if token != sleeper.token:
                continue  # a stale wake-up (its task ended first)
            self.now = max(self.now, at)
            self._yielded.clear()
            sleeper.go.set()
            self._yielded.wait()

    def wait_for(self, task: SimTask, timeout: float | None) -> None:
        me = self._me()
        began = self.now
        task.waiters.append(me)
        if timeout is not None:
            self._schedule(me, self.now + timeout)
        self._yield(me)
        if me in task.waiters:
            task.waiters.remove(me)
        self._book("join", self.now - began)

    def _spawn(self, target: Callable[[], None], task: SimTask, kind: str) -> None:
        sleeper = _Sleeper()

        def body() -> None:
            self._local.sleeper = sleeper
            self._local.kind = kind
            sleeper.go.wait()
            sleeper.go.clear()
            try:
                target()
            finally:
                task.done = True
                for waiter in task.waiters:
                    self._schedule(waiter, self.now)
                with self._lock:
                    self._live -= 1
                self._yielded.set()

        with self._lock:
            self._live += 1
        threading.Thread(target=body, daemon=True).start()
        self._schedule(sleeper, self.now)

    def _me(self) -> _Sleeper:
        sleeper: _Sleeper = self._local.sleeper
        return sleeper

    def _schedule(self, sleeper: _Sleeper, at: float) -> None:
        with self._lock:
            sleeper.token += 1
            heapq.heappush(self._heap, (at, next(self._seq), sleeper, sleeper.token))

    def _yield(self, me: _Sleeper) -> None:
        self._yielded.set()
        me.go.wait()
        me.go.clear()
