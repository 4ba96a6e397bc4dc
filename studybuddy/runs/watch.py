"""Watch mode: check playlists, channels and videos on a schedule and process what is new.

A `Watcher` ticks every `interval_s` (the first tick at once). Each tick starts a check in a background
thread, unless the previous check still runs: then the tick is skipped, counted and logged, never queued
(a non-blocking lock, released in a `finally`, even when the check fails). A failed check is logged and the
next tick tries again. `stop()` (Ctrl-C, or SIGTERM through `stop_on_sigterm`) lets the current check finish
the videos it is on, starts no more, and `run()` returns the counts.

The check itself is any callable given a stop event; `watch()` plugs in a normal run (`runner.run`, which
expands playlists and channels) that only retries failed videos whose backoff has run out. Its checks share
one Tor (`TorKeeper`), connected again only when it is gone. Several
watchers, or a watcher and a manual run, share an output folder safely: the pipeline claims each video in
the archive before processing it.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from studybuddy.config import Settings
from studybuddy.errors import InputError, StudyBuddyError
from studybuddy.runs.admission import Admission
from studybuddy.runs.progress_records import Summary

if TYPE_CHECKING:
    from studybuddy.egress.torlaunch import TorKeeper

log = logging.getLogger(__name__)
Check = Callable[[threading.Event], Summary]


@dataclass(slots=True)
class WatchStats:
    """What a watch did: checks run (started), skipped (one still ran) and failed; videos done and failed."""

    checks_run: int = 0
    checks_skipped: int = 0
    checks_failed: int = 0
    videos_done: int = 0
    videos_failed: int = 0

    def report(self) -> str:
        return (
            f"Watch stopped: {self.checks_run} check(s) run, {self.checks_skipped} skipped"
            f" ({self.checks_failed} failed); {self.videos_done} video(s) done, {self.videos_failed} failed."
        )


def validate_interval(interval_s: float) -> float:
    if not math.isfinite(interval_s) or interval_s <= 0:
        raise InputError(f"--interval {interval_s:g}: must be more than 0 seconds")
    return interval_s


class Watcher:
    """Runs `check` every `interval_s` seconds, never two at once. Thread-safe `stop()`."""

    def __init__(
        self, check: Check, *, interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval_s = validate_interval(interval_s)
        self.stats = WatchStats()
        self.next_check_at: float | None = None  # on `clock`, while `run` ticks
        self._check = check
        self._clock = clock
        self._check_lock = threading.Lock()  # held while a check runs
        self._stats_lock = threading.Lock()
        self._stopping = threading.Event()
        self._check_stop: threading.Event | None = None  # the stop event of the running check
        self._check_thread: threading.Thread | None = None

    def run(self) -> WatchStats:
        """Tick until `stop()` or Ctrl-C, then wait for the current check to finish its videos."""
        next_tick = self._clock()
        try:
            while not self._stopping.is_set():
                self.next_check_at = next_tick + self.interval_s  # known before this check starts
                self.tick()
                next_tick = max(self.next_check_at, self._clock())  # a late tick is not repeated
                self._stopping.wait(next_tick - self._clock())
        except KeyboardInterrupt:
            log.warning("interrupted: finishing the videos in progress")
        self.stop()
        self.wait_for_check()
        return self.stats

    def wait_for_check(self) -> None:
        """Return once the check started last (if any) has ended and released its lock."""
        thread = self._check_thread
        if thread is not None:
            thread.join()

    def stop(self) -> None:
        """Start no more checks; the running check finishes the videos it is on and starts no more."""
        self._stopping.set()
        check_stop = self._check_stop
        if check_stop is not None:
            check_stop.set()

    def tick(self) -> bool:
        """Start a check in the background, unless one is still running (then skip it). True if started."""
        if not self._check_lock.acquire(blocking=False):
            with self._stats_lock:
                self.stats.checks_skipped += 1
                skipped = self.stats.checks_skipped
            log.warning("check skipped: the previous check is still running (%d skipped so far)", skipped)
            return False
        try:
            with self._stats_lock:
                self.stats.checks_run += 1
                number = self.stats.checks_run
            self._check_stop = threading.Event()
            if self._stopping.is_set():
                self._check_stop.set()
            thread = threading.Thread(
                target=self._run_check, args=(number, self._check_stop), name=f"study-buddy-check-{number}"
            )
            self._check_thread = thread
            thread.start()
        except BaseException:
            self._check_lock.release()
            raise
        return True

    def _run_check(self, number: int, stop: threading.Event) -> None:
        started = self._clock()
        log.info("check #%d started", number)
        try:
            summary = self._check(stop)
        except StudyBuddyError as exc:
            self._count_failed_check()
            log.error("check #%d failed: %s", number, exc)
        except Exception:  # a background thread: log it, or it is lost; the next tick tries again
            self._count_failed_check()
            log.exception("check #%d crashed", number)
        else:
            with self._stats_lock:
                self.stats.videos_done += summary.done
                self.stats.videos_failed += summary.failed
            elapsed = self._clock() - started
            log.info(
                "check #%d finished in %.1f s: %d done, %d failed, %d skipped",
                *(number, elapsed, summary.done, summary.failed, summary.skipped),
            )
        finally:
            self._check_lock.release()

    def _count_failed_check(self) -> None:
        with self._stats_lock:
            self.stats.checks_failed += 1


@contextmanager
def stop_on_sigterm(watcher: Watcher) -> Iterator[None]:
    """SIGTERM stops the watcher like Ctrl-C does (main thread only); the old handler comes back after."""

    def handle(signum: int, frame: FrameType | None) -> None:
        log.warning("SIGTERM: finishing the videos in progress")
        watcher.stop()

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_check(
    settings: Settings,
    urls: Sequence[str],
    files: Sequence[Path],
    *,
    warn: Callable[[str], None],
    tor: TorKeeper | None = None,
) -> Check:
    """The check of `watch`: a normal run of `urls` and `files` that retries failures only when due, on
    the Tor that `tor` keeps across checks."""
    from studybuddy.runs.runner import run

    def check(stop: threading.Event) -> Summary:
        admission = Admission(due_only=True)
        outcome = run(settings, urls, files, warn=warn, admission=admission, stop=stop, tor=tor)
        if outcome.fatal:
            warn(f"check stopped early: {outcome.fatal}")
        return outcome.summary

    return check


def watch(
    settings: Settings,
    urls: Sequence[str],
    files: Sequence[Path],
    *,
    interval_s: float,
    warn: Callable[[str], None],
) -> WatchStats:
    """Check `urls` and `files` every `interval_s` until Ctrl-C or SIGTERM; failures retry when due.

    One Tor serves every check: connected (or launched) by the first check that needs it, again only when
    it is gone, and closed when the watch ends."""
    from studybuddy.egress.torlaunch import TorKeeper
    from studybuddy.runs.runner import open_tor

    tor = TorKeeper(lambda: open_tor(settings, warn))
    watcher = Watcher(run_check(settings, urls, files, warn=warn, tor=tor), interval_s=interval_s)
    try:
        with stop_on_sigterm(watcher):
            return watcher.run()
    finally:
        tor.close()
