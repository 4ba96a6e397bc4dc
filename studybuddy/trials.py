"""How new exits fare in this run, and how often an exit nobody knows yet may be tried.

A trial is the first request through an exit with no record (reputation UNKNOWN). On today's YouTube most
Tor exits are blocked, so most trials cost a blocked answer. While trials mostly serve, they run freely;
once blocks dominate the last ten (more than half blocked), the run backs off as a whole: trials are
spaced out, 10 s apart at 6 of 10 blocked, doubling with every further one (40 s at 8 of 10), at most
`max_interval_s`. Exits known to serve are used at their own pace meanwhile; only the search slows down.
`notice()` says so in plain words for the live view and the log.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

RECENT = 10  # trials the run judges by
FREE_TRIALS = 4  # the first trials of a run are never spaced out: there is nothing to judge by yet
BASE_INTERVAL_S = 10.0
MAX_INTERVAL_S = 300.0


class ExitTrials:
    """Thread-safe; the clock is injectable (monotonic seconds)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        base_interval_s: float = BASE_INTERVAL_S,
        max_interval_s: float = MAX_INTERVAL_S,
    ) -> None:
        self._clock = clock
        self._base_s = base_interval_s
        self._max_s = max_interval_s
        self._lock = threading.Lock()
        self._recent: deque[bool] = deque(maxlen=RECENT)  # True: served
        self._pending: set[str] = set()  # exits on trial, their first answer not in yet
        self._next_at = -float("inf")
        self.tried = 0
        self.served = 0

    def interval_s(self) -> float:
        """The spacing between two trials now (0: none)."""
        with self._lock:
            return self._interval()

    def may_try(self) -> bool:
        with self._lock:
            return self._clock() >= self._next_at

    def next_try_in(self) -> float:
        with self._lock:
            return max(0.0, self._next_at - self._clock())

    def begin(self, exit_key: str) -> bool:
        """Start a trial of this exit if one may start now; the next may start one interval later."""
        with self._lock:
            now = self._clock()
            if now < self._next_at:
                return False
            self._pending.add(exit_key)
            self.tried += 1
            self._next_at = now + self._interval()
            return True

    def is_pending(self, exit_key: str) -> bool:
        with self._lock:
            return exit_key in self._pending

    def record(self, exit_key: str, *, served: bool) -> None:
        """The first answer through an exit on trial (answers through other exits are ignored)."""
        with self._lock:
            if exit_key not in self._pending:
                return
            self._pending.discard(exit_key)
            self._recent.append(served)
            self.served += served
            interval = self._interval()
            self._next_at = min(self._next_at, self._clock() + interval) if served else self._next_at

    def notice(self) -> str | None:
        """A line for the view and the log while the run backs off, else None."""
        with self._lock:
            interval = self._interval()
            if interval <= 0:
                return None
            served, total = sum(self._recent), len(self._recent)
        return (
            f"YouTube is blocking most exits: {served} of the last {total} served; "
            f"trying new exits every {interval:.0f} s"
        )

    def _interval(self) -> float:
        total = len(self._recent)
        if self.tried < FREE_TRIALS or total < FREE_TRIALS:
            return 0.0
        blocked_share = 1 - sum(self._recent) / total
        if blocked_share <= 0.5:
            return 0.0
        steps = round((blocked_share - 0.5) * 10)  # 6 of 10 blocked: 1, ..., 10 of 10: 5
        return float(min(self._max_s, self._base_s * 2 ** (steps - 1)))
