"""How new exits fare in this run, and how often an exit not known to serve may be tried.

A trial is the first request through an exit with no good record (unknown, or known to have blocked). On
today's YouTube most Tor exits are blocked, so most trials cost a blocked answer. Trials are paid for two
ways, whichever allows one first:

- **By service.** The run starts with `FREE_TRIALS` and earns `TRIALS_PER_VIDEO` more for every video
  served, so over a long run the blocked answers spent on finding exits stay a small share of the videos,
  however bad the network is, and a run that serves well looks for more exits as it grows.
- **By time.** While trials mostly serve, they are free. Once blocks dominate the last ten (more than half
  blocked), the run backs off as a whole: at most one trial every `base_interval_s` (half a second), whichever
  worker asks. As long as trials keep finding an exit that serves now and then, that is the
  pace: where 1 exit in 10 serves, finding the good ones early is what makes the rest of the run fast, and
  each trial costs one blocked answer, on an exit that has had none from this run. Once `FRUITLESS_TRIALS`
  trials in a row served nothing, the spacing doubles with every `FRUITLESS_STEP` more, up to
  `max_interval_s`: a run on a YouTube that blocks every exit tries a new one every few minutes, politely,
  instead of giving up or hammering.

`notice()` says so in plain words for the live view and the log.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from studybuddy.egress.reputation import Reputation
from studybuddy.store.exit_records import Standing
from studybuddy.timebase import REAL_TIME, Timebase

RECENT = 10  # trials the run judges by
FREE_TRIALS = 24.0  # trials a run may start with, before anything has served
TRIALS_PER_VIDEO = 0.2  # trials earned by every video served
MAX_EARNED = 24.0  # trials a run may save up
BASE_INTERVAL_S = 0.5
MAX_INTERVAL_S = 300.0
FRUITLESS_TRIALS = 30  # trials in a row that served nothing before the spacing grows (0.9**30: 4 %)...
FRUITLESS_STEP = 5  # ...and it doubles with every this many more
JUDGED_AFTER = 4  # trials before their outcomes are judged at all


class ExitTrials:
    """Thread-safe; the clock is injectable (monotonic seconds)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        free_trials: float = FREE_TRIALS,
        trials_per_video: float = TRIALS_PER_VIDEO,
        base_interval_s: float = BASE_INTERVAL_S,
        max_interval_s: float = MAX_INTERVAL_S,
        history: Iterable[bool] = (),
    ) -> None:
        """`history`: how earlier tries fared (True: served), oldest first, e.g. the known exits of an
        archive: a rerun on a network that mostly blocks starts backed off, not with free tries."""
        self._clock = clock
        self._per_video = trials_per_video
        self._base_s = base_interval_s
        self._max_s = max_interval_s
        self._lock = threading.Lock()
        self._tokens = free_trials
        self._recent: deque[bool] = deque(history, maxlen=RECENT)  # True: served
        self._fruitless = 0  # trials in a row that served nothing
        self._pending: set[str] = set()  # exits on trial, their first answer not in yet
        self._last_at = -float("inf")
        self._spacing = self._spacing_now()  # the interval for the outcomes so far (see `_interval`)
        self.tried = 0
        self.served = 0
        self.tried_since_served = 0  # trials since any video was served

    def interval_s(self) -> float:
        """The spacing between two trials paid for by time (0: none)."""
        with self._lock:
            return self._interval()

    def may_try(self) -> bool:
        with self._lock:
            return self._tokens >= 1 or self._clock() >= self._last_at + self._interval()

    def next_try_in(self) -> float:
        with self._lock:
            if self._tokens >= 1:
                return 0.0
            return max(0.0, self._last_at + self._interval() - self._clock())

    def begin(self, exit_key: str) -> bool:
        """Start a trial of this exit if one may start now (paid by service first, else by time)."""
        with self._lock:
            now = self._clock()
            if exit_key in self._pending:
                return False  # another worker is trying it right now: one blocked answer is enough
            if self._tokens >= 1:
                self._tokens -= 1
            elif now < self._last_at + self._interval():
                return False
            self._last_at = now
            self._pending.add(exit_key)
            self.tried += 1
            self.tried_since_served += 1
            return True

    def is_pending(self, exit_key: str) -> bool:
        with self._lock:
            return exit_key in self._pending

    def video_served(self) -> None:
        """Any video served earns the run a share of a trial."""
        with self._lock:
            self._tokens = min(MAX_EARNED, self._tokens + self._per_video)
            self.tried_since_served = 0

    def record(self, exit_key: str, *, served: bool) -> None:
        """The first answer through an exit on trial (answers through other exits are ignored)."""
        with self._lock:
            if exit_key not in self._pending:
                return
            self._pending.discard(exit_key)
            self._recent.append(served)
            self._fruitless = 0 if served else self._fruitless + 1
            self.served += served
            self._spacing = self._spacing_now()

    def notice(self) -> str | None:
        """A line for the view and the log while the run backs off, else None."""
        with self._lock:
            interval = self._interval()
            if interval <= 0 or self._tokens >= 1:
                return None
            served, total = sum(self._recent), len(self._recent)
        return (
            f"YouTube is blocking most exits: {served} of the last {total} served; "
            f"trying new exits every {seconds(interval)}"
        )

    def _interval(self) -> float:
        return self._spacing

    def _spacing_now(self) -> float:
        total = len(self._recent)
        if total < JUDGED_AFTER:
            return 0.0
        blocked_share = 1 - sum(self._recent) / total
        if blocked_share <= 0.5:
            return 0.0
        doublings = max(0, self._fruitless - FRUITLESS_TRIALS + FRUITLESS_STEP) // FRUITLESS_STEP
        return float(min(self._max_s, self._base_s * 2**doublings))


def seconds(interval_s: float) -> str:
    """A trial spacing in words: "0.5 s", "16 s", "300 s"."""
    return f"{interval_s:.3g} s"


def warm_trials(reputation: Reputation, pool: frozenset[str], timebase: Timebase = REAL_TIME) -> ExitTrials:
    """The run's trials of new exits. A run that knows exits that serve starts on them: no free trials (it
    earns them by serving), and the standings it knows count as the recent tries, so on a network that
    mostly blocks it starts backed off. A run that knows none starts with the free trials."""
    standings = [reputation.standing(key) for key in sorted(reputation.known() & pool)]
    known = [standing is Standing.GOOD for standing in standings if standing is not Standing.UNKNOWN]
    if not any(known):
        return ExitTrials(clock=timebase.monotonic)
    return ExitTrials(clock=timebase.monotonic, free_trials=0.0, history=known[-RECENT:])
