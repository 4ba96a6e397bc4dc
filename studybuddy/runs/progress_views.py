"""The views of a run's progress, and the final summary text.

- `RichView`: a `rich.live.Live` status table (active and recent videos), one row per worker
  (video, stage, Tor exit, circuit age) and a global progress bar with the ETA. Live's own
  refresh thread renders, so workers never wait for the terminal.
- `PlainView`: one log line per stage change and per finished video, for pipes and files.
- `QuietView`: nothing live, for `--json`.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from studybuddy.runs.progress import DEFAULT_MAX_ROWS, ProgressMonitor, ProgressView
from studybuddy.runs.progress_records import ProgressEvent, ProgressSnapshot, Stage, Summary

SUMMARY_FAILURES_SHOWN = 20
_STAGE_STYLES = {Stage.QUEUED: "dim", Stage.DONE: "green", Stage.SKIPPED: "yellow", Stage.FAILED: "bold red"}


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def format_seconds(seconds: float) -> str:
    """`1:02:03` above an hour, else `2:03`."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _describe(video_id: str, title: str | None) -> str:
    return f"{title} ({video_id})" if title else video_id


def format_summary(summary: Summary) -> str:
    """The final human summary: counts, failures by kind and reason, elapsed time."""
    failed = f"{summary.failed} failed"
    if summary.failed_by_kind:
        failed += " (" + ", ".join(f"{kind} {n}" for kind, n in summary.failed_by_kind.items()) + ")"
    lines = [
        f"{_count(summary.total, 'video')} in {format_seconds(summary.elapsed_s)}: "
        f"{summary.done} done, {summary.skipped} skipped, {failed}"
    ]
    failures = [o for o in summary.outcomes if o.stage is Stage.FAILED]
    lines += [
        f"  failed  {_describe(o.video_id, o.title)}: {o.detail or 'unknown error'}"
        for o in failures[:SUMMARY_FAILURES_SHOWN]
    ]
    if len(failures) > SUMMARY_FAILURES_SHOWN:
        lines.append(f"  … and {len(failures) - SUMMARY_FAILURES_SHOWN} more failures")
    return "\n".join(lines)


class QuietView:
    """Shows nothing while running: for `--json`, where the CLI prints the summary."""

    def start(self, monitor: ProgressMonitor) -> None:
        """Nothing to show."""

    def update(self, monitor: ProgressMonitor) -> None:
        """Nothing to show."""

    def stop(self, summary: Summary) -> None:
        """Nothing to show."""


class PlainView:
    """One line per stage change and per finished video: for pipes and log files."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._last_seq = 0

    def start(self, monitor: ProgressMonitor) -> None:
        snapshot = monitor.snapshot(max_rows=0)
        header = f"{_count(snapshot.total, 'video')}, {_count(snapshot.workers_planned, 'worker')}\n"
        with self._lock:
            self._stream.write(header)

    def update(self, monitor: ProgressMonitor) -> None:
        with self._lock:
            for event in monitor.events_since(self._last_seq):
                self._last_seq = event.seq
                self._stream.write(self.format_event(event) + "\n")
            self._stream.flush()

    def stop(self, summary: Summary) -> None:
        """Nothing more: the caller prints `format_summary(summary)` (or the JSON) itself."""

    @staticmethod
    def format_event(event: ProgressEvent) -> str:
        """`[3/30] done  Title (abc123def45) -> notes/Title.md`, `[4/30] failed  id: reason`."""
        line = (
            f"[{event.finished}/{event.total}] {event.stage.label}  {_describe(event.video_id, event.title)}"
        )
        detail = event.outcome.detail if event.outcome else None
        if detail is None:
            return line
        return f"{line} -> {detail}" if event.stage is Stage.DONE else f"{line}: {detail}"


class RichView:
    """A live terminal view, redrawn by Live's refresh thread from `snapshot()`."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        refresh_per_second: float = 4,
    ) -> None:
        self._console = console or Console()
        self._max_rows = max_rows
        self._refresh_per_second = refresh_per_second
        self._live: Live | None = None

    def start(self, monitor: ProgressMonitor) -> None:
        self._live = Live(
            console=self._console,
            refresh_per_second=self._refresh_per_second,
            transient=False,
            get_renderable=lambda: render_snapshot(monitor.snapshot(self._max_rows)),
        )
        self._live.start(refresh=True)

    def update(self, monitor: ProgressMonitor) -> None:
        """Nothing to do: Live's refresh thread redraws on its own schedule."""

    def stop(self, summary: Summary) -> None:
        if self._live is not None:
            self._live.stop()  # the last frame stays on screen; the caller prints the summary
            self._live = None


def _stage_text(stage: Stage | None) -> Text:
    if stage is None:
        return Text("idle", style="dim")
    return Text(stage.label, style=_STAGE_STYLES.get(stage, "cyan"))


def _videos_table(snapshot: ProgressSnapshot) -> Table:
    table = Table(title="Videos", title_justify="left", expand=True)
    table.add_column("video", no_wrap=True)
    table.add_column("title", ratio=2, no_wrap=True, overflow="ellipsis")
    table.add_column("stage", no_wrap=True)
    table.add_column("worker", justify="right", no_wrap=True)
    table.add_column("note / reason", ratio=2, no_wrap=True, overflow="ellipsis")
    for row in snapshot.rows:
        worker = "" if row.worker is None else f"w{row.worker}"
        table.add_row(row.video_id, row.title or "", _stage_text(row.stage), worker, row.detail or "")
    return table


def _workers_table(snapshot: ProgressSnapshot) -> Table:
    table = Table(title="Workers", title_justify="left", expand=True)
    table.add_column("worker", justify="right", no_wrap=True)
    table.add_column("current video", ratio=2, no_wrap=True, overflow="ellipsis")
    table.add_column("stage", no_wrap=True)
    table.add_column("exit", ratio=1, no_wrap=True, overflow="ellipsis")
    table.add_column("circuit age", justify="right", no_wrap=True)
    for row in snapshot.workers:
        video = _describe(row.video_id, row.title) if row.video_id else ""
        age = format_seconds(row.circuit_age_s) if row.circuit_age_s is not None else ""
        table.add_row(f"w{row.worker}", video, _stage_text(row.stage), row.exit_label or "", age)
    return table


def _progress_line(snapshot: ProgressSnapshot) -> Table:
    percent = 100 * snapshot.finished / snapshot.total if snapshot.total else 100.0
    eta = "--:--" if snapshot.eta_s is None else format_seconds(snapshot.eta_s)
    counts = (
        f"{snapshot.finished}/{snapshot.total} {percent:.0f}%  "
        f"done {snapshot.done} · skipped {snapshot.skipped} · failed {snapshot.failed}  "
        f"elapsed {format_seconds(snapshot.elapsed_s)}  ETA {eta}"
    )
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(ratio=1)
    grid.add_column(no_wrap=True)
    grid.add_row(ProgressBar(total=max(snapshot.total, 1), completed=snapshot.finished), counts)
    return grid


def render_snapshot(snapshot: ProgressSnapshot) -> RenderableType:
    """The live view's picture of one snapshot: videos, workers, global progress."""
    parts: list[RenderableType] = [_videos_table(snapshot)]
    if snapshot.hidden_rows:
        parts.append(Text(f"… {snapshot.hidden_rows} more", style="dim"))
    if snapshot.workers:
        parts.append(_workers_table(snapshot))
    if snapshot.notice:
        parts.append(Text(snapshot.notice, style="bold yellow"))
    parts.append(_progress_line(snapshot))
    return Group(*parts)


def make_view(*, json_output: bool, stream: TextIO | None = None) -> ProgressView:
    """`QuietView` for `--json`, `RichView` on a terminal, `PlainView` otherwise."""
    if json_output:
        return QuietView()
    out = stream if stream is not None else sys.stdout
    if out.isatty():
        return RichView(Console(file=out))
    return PlainView(out)
