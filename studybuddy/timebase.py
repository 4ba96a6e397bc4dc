"""Time as the pacing code sees it: clocks, interruptible sleeps and background tasks, behind one seam.

The decision code (limiter, reputation, pacer) never calls `time` or `threading` for these directly, so
the same code runs in real time against a real Tor, and in virtual time against a simulated network of
thousands of exits (`scripts/simulate`), where an hour passes in a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Task(Protocol):
    """A started background task."""

    def join(self, timeout: float | None = None) -> None:
        """Wait until it has finished (at most `timeout` seconds)."""


class Timebase(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals)."""

    def time(self) -> float:
        """Unix time (for what is stored and compared across runs)."""

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        """Sleep up to `seconds`; return True at once when `stop` is (or gets) set."""

    def start(self, target: Callable[[], None], name: str) -> Task:
        """Run `target` in the background (a daemon: it never holds up the end of the process)."""


class RealTime:
    """The wall clock and real threads."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(0.0, seconds))

    def start(self, target: Callable[[], None], name: str) -> Task:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread


REAL_TIME = RealTime()
