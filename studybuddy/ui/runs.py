"""Runs that live outside requests: the `RunManager` starts each run in a thread it owns, one run per
output folder at a time, keeps its outcome (or why it crashed), and stops them all when the server stops.

A `RunView` is the run's `ProgressView`: it is fed by the same `ProgressMonitor` events as the terminal's
view, keeps the points of the finished-over-time chart, and wakes the browser tabs that watch the run. A tab
is woken at most once however many events arrive before it reads (see `Subscriber`), so the cost of a busy
run does not grow with its number of events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from studybuddy.config import Settings
from studybuddy.errors import StudyBuddyError
from studybuddy.runs.admission import Admission
from studybuddy.runs.progress import ProgressMonitor, ProgressView
from studybuddy.runs.progress_records import ProgressSnapshot, Summary
from studybuddy.runs.progress_views import format_summary

if TYPE_CHECKING:
    from studybuddy.runs.runner import RunOutcome

log = logging.getLogger(__name__)

CHART_POINTS = 400  # points of the finished-over-time chart kept; halved (every other) when full
WARNINGS_KEPT = 200


class Runner(Protocol):
    def __call__(
        self,
        settings: Settings,
        urls: Sequence[str],
        files: Sequence[Path],
        *,
        warn: Callable[[str], None],
        admission: Admission | None,
        stop: threading.Event,
        view: ProgressView,
    ) -> RunOutcome: ...


def run_videos(
    settings: Settings,
    urls: Sequence[str],
    files: Sequence[Path],
    *,
    warn: Callable[[str], None],
    admission: Admission | None,
    stop: threading.Event,
    view: ProgressView,
) -> RunOutcome:
    """The server's `Runner`: `runner.run`, imported when the first run starts (it is the heavy part), so
    the server starts fast."""
    from studybuddy.runs.runner import run

    return run(settings, urls, files, warn=warn, admission=admission, stop=stop, view=view)


class FolderBusy(StudyBuddyError):
    """A run on this output folder is still going."""

    def __init__(self, output: Path, run_id: str) -> None:
        super().__init__(f"{output} is busy: run {run_id} is still working on it (one run per folder)")
        self.run_id = run_id


class Subscriber:
    """One browser tab watching a run: `wake` (any thread) sets its asyncio event once until it is read."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()
        self._pending = False

    def wake(self) -> None:
        if self._pending:
            return
        self._pending = True
        with contextlib.suppress(RuntimeError):  # a closed loop: the server has stopped, nobody watches
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout_s: float) -> None:
        """Until woken or `timeout_s` (the page's clocks, circuit ages and ETA, still move)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_s)
        self._pending = False
        self._event.clear()


class RunView:
    """The web's `ProgressView`: chart history and the wake-up of watching tabs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._monitor: ProgressMonitor | None = None
        self._subscribers: set[Subscriber] = set()
        self._last_seq = 0
        self._started = 0.0
        self._points: list[tuple[float, int]] = [(0.0, 0)]
        self.version = 0
        self.summary: Summary | None = None

    def start(self, monitor: ProgressMonitor) -> None:
        with self._lock:
            self._monitor = monitor
            self._started = monitor.now()
        self.changed()

    def update(self, monitor: ProgressMonitor) -> None:
        with self._lock:
            for event in monitor.events_since(self._last_seq):
                self._last_seq = event.seq
                if event.stage.is_terminal:
                    self._points.append((monitor.now() - self._started, event.finished))
            if len(self._points) > CHART_POINTS:
                self._points = [*self._points[:-1:2], self._points[-1]]
        self.changed()

    def stop(self, summary: Summary) -> None:
        with self._lock:
            self.summary = summary
        self.changed()

    def snapshot(self, max_rows: int) -> ProgressSnapshot | None:
        monitor = self._monitor
        return monitor.snapshot(max_rows) if monitor is not None else None

    def points(self) -> list[tuple[float, int]]:
        with self._lock:
            return list(self._points)

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.add(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)

    def changed(self) -> None:
        """Something the page shows changed: a new version, and every watching tab is woken."""
        with self._lock:
            self.version += 1
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.wake()


@dataclass(eq=False)
class Run:
    """One run started from the UI; its thread fills `outcome` or `crash` and sets `ended`."""

    id: str
    output: Path
    settings: Settings
    label: str
    view: RunView = field(default_factory=RunView)
    stop: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    started_at: float = field(default_factory=time.time)
    warnings: deque[str] = field(default_factory=lambda: deque(maxlen=WARNINGS_KEPT))
    outcome: RunOutcome | None = None
    crash: str | None = None

    @property
    def state(self) -> str:
        if self.crash is not None:
            return "crashed"
        if self.ended.is_set():
            return "finished"
        return "stopping" if self.stop.is_set() else "running"

    def warn(self, line: str) -> None:
        self.warnings.append(line)
        self.view.changed()

    def report(self) -> str | None:
        """The CLI's closing report, once the run has ended without crashing."""
        if self.outcome is not None:
            return self.outcome.report()
        summary = self.view.summary
        return format_summary(summary) if summary is not None and self.ended.is_set() else None


class RunManager:
    """Owns the runs: each in its own thread, never in a request; one per output folder at a time."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._lock = threading.Lock()
        self._runs: dict[str, Run] = {}
        self._by_folder: dict[Path, Run] = {}
        self._threads: list[threading.Thread] = []

    def start(
        self,
        settings: Settings,
        urls: Sequence[str],
        files: Sequence[Path],
        *,
        label: str,
        admission: Admission | None = None,
        cleanup: Callable[[], None] | None = None,
    ) -> Run:
        """Start a run in a new thread; `FolderBusy` when its output folder has a run still going."""
        folder = settings.output.resolve()
        with self._lock:
            current = self._by_folder.get(folder)
            if current is not None and not current.ended.is_set():
                raise FolderBusy(settings.output, current.id)
            run = Run(secrets.token_hex(4), folder, settings, label)
            self._runs[run.id] = run
            self._by_folder[folder] = run
            thread = threading.Thread(
                target=self._execute,
                args=(run, list(urls), list(files), admission, cleanup),
                name=f"study-buddy-ui-run-{run.id}",
            )
            self._threads.append(thread)
        thread.start()
        return run

    def get(self, run_id: str) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def runs(self) -> list[Run]:
        """Every run of this server, newest first."""
        with self._lock:
            return sorted(self._runs.values(), key=lambda run: run.started_at, reverse=True)

    def busy(self, output: Path) -> Run | None:
        with self._lock:
            run = self._by_folder.get(output.resolve())
        return run if run is not None and not run.ended.is_set() else None

    def stop_all(self) -> None:
        """Ask every run to finish the videos in progress and start no more."""
        for run in self.runs():
            run.stop.set()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for every run's thread; False if one still runs after `timeout_s`."""
        with self._lock:
            threads = list(self._threads)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for thread in threads:
            thread.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        return not any(thread.is_alive() for thread in threads)

    def _execute(
        self,
        run: Run,
        urls: list[str],
        files: list[Path],
        admission: Admission | None,
        cleanup: Callable[[], None] | None,
    ) -> None:
        try:
            run.outcome = self._runner(
                run.settings, urls, files, warn=run.warn, admission=admission, stop=run.stop, view=run.view
            )
        except StudyBuddyError as exc:
            run.crash = str(exc)
        except Exception as exc:  # a thread of the server: the page shows why, the server goes on
            log.exception("run %s crashed", run.id)
            run.crash = f"{type(exc).__name__}: {exc}"
        finally:
            run.ended.set()
            if cleanup is not None:
                cleanup()
            run.view.changed()
