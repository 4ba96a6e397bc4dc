"""Progress of a run: one thread-safe `ProgressMonitor` fed by the workers.

Workers only report events (`stage`, `finish`, `set_title`, `worker_info`); each event mutates a
small per-video row under one lock and then tells the view, outside the lock. Views (in
`progress_views`) read immutable `ProgressSnapshot`s (a bounded number of rows, however many videos
there are) or, for the plain view, the numbered event log. The same views serve the sequential and
the parallel mode. No view prints the final summary: the caller does, with `format_summary` or
`Summary.to_json`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

from studybuddy.runs.progress_records import (
    TERMINAL,
    Outcome,
    ProgressEvent,
    ProgressSnapshot,
    Stage,
    Summary,
    VideoRow,
    WorkerRow,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_ROWS = 15
FINISHED_KEPT = 100  # finished videos whose rows are kept for views; older ones keep only their stage
EVENT_BACKLOG = 256  # events kept for views that read the log (PlainView drains it on every event)


class ProgressView(Protocol):
    def start(self, monitor: ProgressMonitor) -> None: ...

    def update(self, monitor: ProgressMonitor) -> None:
        """Called from worker threads after each event: must be cheap and thread-safe."""

    def stop(self, summary: Summary) -> None: ...


@dataclass(slots=True)
class _VideoState:
    title: str | None = None
    stage: Stage = Stage.QUEUED
    worker: int | None = None
    started_at: float | None = None
    detail: str | None = None


@dataclass(slots=True)
class _WorkerState:
    video_id: str | None = None
    stage: Stage | None = None
    exit_label: str | None = None
    circuit_started: float | None = None


class ProgressMonitor:
    """Thread-safe progress of one run. `clock` is also the clock of `circuit_started` (see `now`).

    Memory stays flat over long runs: a finished video keeps its row only while it is among the last
    `FINISHED_KEPT`, and its outcome only if it failed, unless `all_outcomes` (the `--json` report lists
    every video).
    """

    def __init__(
        self,
        view: ProgressView | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        all_outcomes: bool = True,
    ) -> None:
        self._view = view
        self._clock = clock
        self._all_outcomes = all_outcomes
        self._lock = threading.Lock()
        self._videos: dict[str, _VideoState] = {}
        self._forgotten: dict[str, Stage] = {}  # finished long ago: only the stage they ended in
        self._total = 0
        # Each video id sits in exactly one of these, by stage group; dict order = order of arrival.
        self._queued: dict[str, None] = {}
        self._active: dict[str, None] = {}
        self._finished: dict[str, None] = {}
        self._counts: Counter[Stage] = Counter()
        self._outcomes: dict[str, Outcome] = {}
        self._workers: dict[int, _WorkerState] = {}
        self._workers_planned = 1
        self._timed_total_s = 0.0
        self._timed_count = 0
        self._events: deque[ProgressEvent] = deque(maxlen=EVENT_BACKLOG)
        self._seq = 0
        self._started_at: float | None = None
        self._closed_at: float | None = None
        self._notice: str | None = None

    def now(self) -> float:
        """A reading of the monitor's clock, e.g. for `worker_info(circuit_started=...)`."""
        return self._clock()

    def start(self, video_ids: Sequence[str], workers: int) -> None:
        """Begin the run with every video queued, then start the view."""
        with self._lock:
            if self._started_at is not None:
                raise RuntimeError("this ProgressMonitor has already been started")
            self._started_at = self._clock()
            self._workers_planned = max(1, workers)
            for video_id in video_ids:
                if video_id not in self._videos and video_id not in self._forgotten:
                    self._add_video(video_id)
        if self._view is not None:
            self._view.start(self)

    def set_title(self, video_id: str, title: str) -> None:
        with self._lock:
            self._video(video_id).title = title
        self._notify()

    def stage(self, video_id: str, stage: Stage, worker: int | None = None) -> None:
        """Move a video to a new stage (use `finish` for done, skipped and failed)."""
        if stage.is_terminal:
            raise ValueError(f"use finish() to mark {video_id} {stage.label}")
        with self._lock:
            self._move(video_id, stage, worker)
            self._record_event(video_id, None)
        self._notify()

    def finish(self, outcome: Outcome, worker: int | None = None) -> None:
        with self._lock:
            video_id = outcome.video_id
            state = self._move(video_id, outcome.stage, worker)
            if outcome.title:
                state.title = outcome.title
            state.detail = outcome.detail
            self._outcomes.pop(video_id, None)  # a second finish moves it to the end
            if self._all_outcomes or outcome.stage is Stage.FAILED:
                self._outcomes[video_id] = outcome
            self._record_event(video_id, outcome)
            self._forget_old_finished()
        self._notify()

    def worker_info(
        self, worker: int, *, exit_label: str | None = None, circuit_started: float | None = None
    ) -> None:
        """Record the worker's Tor exit ("nickname 1.2.3.4") and when its circuit was built."""
        with self._lock:
            state = self._workers.setdefault(worker, _WorkerState())
            if exit_label is not None:
                state.exit_label = exit_label
            if circuit_started is not None:
                state.circuit_started = circuit_started
        self._notify()

    def forget_worker(self, worker: int) -> None:
        """Drop a worker's row (a worker that is done for this run, such as the playlist lister)."""
        with self._lock:
            self._workers.pop(worker, None)
        self._notify()

    def notice(self, text: str | None) -> None:
        """Say what the run as a whole is waiting for (e.g. YouTube blocking most exits); None clears it."""
        with self._lock:
            self._notice = text
        self._notify()

    def snapshot(self, max_rows: int = DEFAULT_MAX_ROWS) -> ProgressSnapshot:
        with self._lock:
            now = self._clock()
            active = list(islice(self._active, max_rows))
            finished_count = min(len(self._finished), max_rows - len(active))
            finished = list(islice(reversed(self._finished), finished_count))[::-1]
            queued = list(islice(self._queued, max_rows - len(active) - len(finished)))
            rows = tuple(self._row(video_id) for video_id in [*finished, *active, *queued])
            workers = tuple(self._worker_row(index, now) for index in sorted(self._workers))
            return ProgressSnapshot(
                total=self._total,
                done=self._counts[Stage.DONE],
                skipped=self._counts[Stage.SKIPPED],
                failed=self._counts[Stage.FAILED],
                active=len(self._active),
                workers_planned=self._workers_planned,
                rows=rows,
                hidden_rows=self._total - len(rows),
                workers=workers,
                elapsed_s=self._elapsed(now),
                eta_s=self._eta(),
                notice=self._notice,
            )

    def events_since(self, seq: int) -> tuple[ProgressEvent, ...]:
        """The stage changes numbered above `seq` that are still in the backlog, oldest first."""
        newer: list[ProgressEvent] = []
        with self._lock:
            for event in reversed(self._events):  # the reader usually lags by an event or two
                if event.seq <= seq:
                    break
                newer.append(event)
        return tuple(reversed(newer))

    def summary(self) -> Summary:
        with self._lock:
            outcomes = tuple(self._outcomes.values())
            failed_by_kind = Counter(o.kind or "unknown" for o in outcomes if o.stage is Stage.FAILED)
            return Summary(
                total=self._total,
                done=self._counts[Stage.DONE],
                skipped=self._counts[Stage.SKIPPED],
                failed=self._counts[Stage.FAILED],
                failed_by_kind=dict(sorted(failed_by_kind.items())),
                elapsed_s=self._elapsed(self._clock()),
                outcomes=outcomes,
            )

    def close(self) -> None:
        """End the run and stop the view with the summary. Calling it again does nothing."""
        with self._lock:
            if self._closed_at is not None:
                return
            self._closed_at = self._clock()
            was_started = self._started_at is not None
        if self._view is not None and was_started:
            self._view.stop(self.summary())

    # Everything below runs with self._lock held.

    def _add_video(self, video_id: str) -> _VideoState:
        state = self._videos[video_id] = _VideoState()
        self._queued[video_id] = None
        self._counts[Stage.QUEUED] += 1
        self._total += 1
        return state

    def _video(self, video_id: str) -> _VideoState:
        state = self._videos.get(video_id)
        if state is None and video_id in self._forgotten:  # back after a long time: a row again
            state = self._videos[video_id] = _VideoState(stage=self._forgotten.pop(video_id))
            self._finished[video_id] = None
        if state is None:
            log.debug("video %s was not in the planned list: adding it", video_id)
            state = self._add_video(video_id)
        return state

    def _forget_old_finished(self) -> None:
        while len(self._finished) > FINISHED_KEPT:
            oldest = next(iter(self._finished))
            del self._finished[oldest]
            self._forgotten[oldest] = self._videos.pop(oldest).stage

    def _group(self, stage: Stage) -> dict[str, None]:
        if stage.is_terminal:
            return self._finished
        return self._active if stage.is_active else self._queued

    def _move(self, video_id: str, stage: Stage, worker: int | None) -> _VideoState:
        state = self._video(video_id)
        del self._group(state.stage)[video_id]
        self._group(stage)[video_id] = None
        self._counts[state.stage] -= 1
        self._counts[stage] += 1
        now = self._clock()
        if stage.is_active and state.started_at is None:
            state.started_at = now
        elif stage.is_terminal or stage is Stage.QUEUED:
            if stage in (Stage.DONE, Stage.FAILED) and state.started_at is not None:
                self._timed_total_s += now - state.started_at
                self._timed_count += 1
            state.started_at = None
        if not stage.is_terminal:  # back in the pipeline (a retry): its old outcome no longer counts
            state.detail = None
            self._outcomes.pop(video_id, None)
        self._assign_worker(video_id, state, stage, worker)
        state.stage = stage
        return state

    def _assign_worker(self, video_id: str, state: _VideoState, stage: Stage, worker: int | None) -> None:
        """Keep the worker rows in step: a worker shows the video it is busy with, or nothing."""
        if worker is not None and worker != state.worker:
            if state.worker is not None:
                self._release_worker(state.worker, video_id)
            state.worker = worker
        if state.worker is None:
            return
        current = self._workers.setdefault(state.worker, _WorkerState())
        if stage.is_active:
            current.video_id, current.stage = video_id, stage
        else:
            self._release_worker(state.worker, video_id)

    def _release_worker(self, worker: int, video_id: str) -> None:
        state = self._workers.get(worker)
        if state is not None and state.video_id == video_id:
            state.video_id, state.stage = None, None

    def _record_event(self, video_id: str, outcome: Outcome | None) -> None:
        state = self._videos[video_id]
        self._seq += 1
        finished, total = self._finished_count(), self._total
        event = ProgressEvent(
            self._seq, video_id, state.title, state.stage, state.worker, finished, total, outcome
        )
        self._events.append(event)

    def _row(self, video_id: str) -> VideoRow:
        state = self._videos[video_id]
        return VideoRow(video_id, state.title, state.stage, state.worker, state.detail)

    def _worker_row(self, index: int, now: float) -> WorkerRow:
        state = self._workers[index]
        title = self._videos[state.video_id].title if state.video_id else None
        age = now - state.circuit_started if state.circuit_started is not None else None
        return WorkerRow(index, state.video_id, title, state.stage, state.exit_label, age)

    def _finished_count(self) -> int:
        return sum(self._counts[stage] for stage in TERMINAL)

    def _elapsed(self, now: float) -> float:
        if self._started_at is None:
            return 0.0
        return (self._closed_at if self._closed_at is not None else now) - self._started_at

    def _eta(self) -> float | None:
        remaining = self._total - self._finished_count()
        if remaining == 0:
            return 0.0
        if self._timed_count == 0:
            return None
        mean_s = self._timed_total_s / self._timed_count
        return mean_s * remaining / min(self._workers_planned, remaining)

    def _notify(self) -> None:
        if self._view is not None:
            self._view.update(self)
