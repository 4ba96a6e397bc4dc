"""`RequestLimiter`: one budget for calls to a remote API, shared by every worker thread.

Two limits apply together: at most `max_concurrent` calls in flight (a semaphore) and at most
`per_minute` calls started in any sliding 60-second window. Both are global: eight workers share
one budget, they do not get eight. The clock, the sleep and the semaphore are injectable, so tests run
instantly and can tell when calls wait for a slot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0


class RequestLimiter:
    """A context manager: `with limiter:` blocks until a slot and a per-minute token are free."""

    def __init__(
        self,
        max_concurrent: int,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        semaphore: Callable[[int], threading.Semaphore] = threading.BoundedSemaphore,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, got {max_concurrent}")
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        self.max_concurrent = max_concurrent
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._slots = semaphore(max_concurrent)
        self._lock = threading.Lock()
        self._recent_starts: deque[float] = deque()

    def __enter__(self) -> RequestLimiter:
        self._slots.acquire()
        try:
            self._take_token()
        except BaseException:
            self._slots.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._slots.release()

    def _take_token(self) -> None:
        """Record a call start, first sleeping until the window has room for it."""
        while True:
            with self._lock:
                now = self._clock()
                while self._recent_starts and self._recent_starts[0] <= now - WINDOW_SECONDS:
                    self._recent_starts.popleft()
                if len(self._recent_starts) < self.per_minute:
                    self._recent_starts.append(now)
                    return
                wait = self._recent_starts[0] + WINDOW_SECONDS - now
            log.debug("request budget of %d per minute used up: waiting %.1fs", self.per_minute, wait)
            self._sleep(wait)
