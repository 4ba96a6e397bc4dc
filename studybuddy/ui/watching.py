"""The Watch page's service: a `Watcher` of the server that checks the watched playlists, channels and
videos of the output folder on a schedule, as `study-buddy watch` does.

The list lives in the output folder (`.study-buddy-watch.txt`, one URL a line, read as `--file`), so it
outlives the server; each check reads it anew, so an added or removed line counts from the next check on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from studybuddy.config import Settings
from studybuddy.errors import InputError
from studybuddy.runs.admission import Admission
from studybuddy.runs.progress_records import Summary
from studybuddy.runs.progress_views import QuietView
from studybuddy.runs.watch import Watcher, WatchStats
from studybuddy.store.output import atomic_write_text
from studybuddy.ui.runs import Runner
from studybuddy.youtube.inputs import read_inputs

WATCH_FILE = ".study-buddy-watch.txt"
DEFAULT_INTERVAL_S = 600.0


@dataclass(frozen=True, slots=True)
class WatchState:
    urls: tuple[str, ...]
    stats: WatchStats
    running: bool
    next_check_in_s: float | None
    interval_s: float
    last_lines: tuple[str, ...]


class WatchService:
    def __init__(
        self,
        settings: Settings,
        runner: Runner,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.path = settings.output / WATCH_FILE
        self._clock = clock
        self._runner = runner
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._watcher = Watcher(self._check, interval_s=interval_s, clock=clock)
        self._thread: threading.Thread | None = None

    def urls(self) -> list[str]:
        if not self.path.is_file():
            return []
        return [line.strip() for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def add(self, url: str) -> None:
        """Watch one more URL (a playlist, channel or video); a bad one is an `InputError` naming it."""
        inputs = read_inputs([url.strip()], [])
        if inputs.bad:
            raise InputError(inputs.bad[0].message.replace("argument 1", "URL"))
        urls = self.urls()
        if url.strip() not in urls:
            self._save([*urls, url.strip()])
        self.start()

    def remove(self, url: str) -> None:
        self._save([line for line in self.urls() if line != url.strip()])

    def start(self) -> None:
        """Begin checking (the first check at once) when there is something to watch; once per server."""
        with self._lock:
            if self._thread is not None or not self.urls():
                return
            self._thread = threading.Thread(
                target=self._watcher.run, name="study-buddy-ui-watch", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Start no more checks; the running one finishes its videos (see `join`)."""
        self._watcher.stop()

    def join(self, timeout_s: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def state(self) -> WatchState:
        due = self._watcher.next_check_at
        with self._lock:
            lines = tuple(self._lines[-10:])
        return WatchState(
            urls=tuple(self.urls()),
            stats=self._watcher.stats,
            running=self._thread is not None,
            next_check_in_s=max(due - self._clock(), 0.0) if due is not None else None,
            interval_s=self._watcher.interval_s,
            last_lines=lines,
        )

    def _say(self, line: str) -> None:
        with self._lock:
            self._lines = [*self._lines[-99:], line]

    def _check(self, stop: threading.Event) -> Summary:
        if not self.urls():
            return Summary(0, 0, 0, 0, {}, 0.0, ())
        files: list[Path] = [self.path]
        admission = Admission(due_only=True)
        outcome = self._runner(
            self.settings, [], files, warn=self._say, admission=admission, stop=stop, view=QuietView()
        )
        if outcome.fatal:
            self._say(f"check stopped early: {outcome.fatal}")
        self._say(outcome.report().splitlines()[0])
        return outcome.summary

    def _save(self, urls: list[str]) -> None:
        self.settings.output.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, "".join(f"{url}\n" for url in urls))
