"""Tests for studybuddy.progress: the thread-safe monitor, ETA, and the plain, rich and quiet views."""

from __future__ import annotations

import io
import json
import re
import threading
from pathlib import Path

import pytest
from rich.console import Console

from studybuddy.errors import ErrorKind
from studybuddy.runs.progress import FINISHED_KEPT, ProgressMonitor
from studybuddy.runs.progress_records import Outcome, Stage, Summary
from studybuddy.runs.progress_views import (
    PlainView,
    QuietView,
    RichView,
    format_seconds,
    format_summary,
    make_view,
    render_snapshot,
)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingView:
    def __init__(self) -> None:
        self.started = 0
        self.updates = 0
        self.summaries: list[Summary] = []

    def start(self, monitor: ProgressMonitor) -> None:
        self.started += 1

    def update(self, monitor: ProgressMonitor) -> None:
        self.updates += 1

    def stop(self, summary: Summary) -> None:
        self.summaries.append(summary)


def failed(video_id: str, reason: str = "transcripts are disabled", title: str | None = None) -> Outcome:
    return Outcome(video_id, Stage.FAILED, title, ErrorKind.PERMANENT.value, reason, None)


def done(video_id: str, title: str | None = None) -> Outcome:
    return Outcome(video_id, Stage.DONE, title, None, None, Path("notes") / f"{title or video_id}.md")


def plain_text(console: Console) -> str:
    assert isinstance(console.file, io.StringIO)
    return ANSI.sub("", console.file.getvalue())


# --- stages and outcomes -----------------------------------------------------------------------------


def test_stage_values_and_labels() -> None:
    assert [s.value for s in Stage] == ["queued", "fetching", "notes", "writing", "done", "skipped", "failed"]
    assert [s.label for s in Stage] == [
        "queued",
        "fetching",
        "writing notes",
        "writing",
        "done",
        "skipped",
        "failed",
    ]


def test_outcome_must_be_terminal() -> None:
    with pytest.raises(ValueError, match="done, skipped or failed"):
        Outcome("abc123def45", Stage.FETCHING)


def test_stage_refuses_terminal_stages() -> None:
    monitor = ProgressMonitor()
    monitor.start(["abc123def45"], workers=1)
    with pytest.raises(ValueError, match="finish"):
        monitor.stage("abc123def45", Stage.DONE)


def test_start_twice_is_a_programming_error() -> None:
    monitor = ProgressMonitor()
    monitor.start([], workers=1)
    with pytest.raises(RuntimeError):
        monitor.start([], workers=1)


# --- counts, workers, consistency --------------------------------------------------------------------


def test_counts_follow_stage_changes_and_retries() -> None:
    monitor = ProgressMonitor()
    monitor.start(["a", "b", "c"], workers=2)
    monitor.stage("a", Stage.FETCHING, worker=1)
    snap = monitor.snapshot()
    assert (snap.total, snap.active, snap.finished) == (3, 1, 0)

    monitor.finish(failed("a"), worker=1)
    monitor.finish(Outcome("b", Stage.SKIPPED, reason="already done"))
    assert monitor.summary().failed == 1
    # a retry takes the failed video back: its old outcome no longer counts
    monitor.stage("a", Stage.FETCHING, worker=2)
    summary = monitor.summary()
    assert (summary.done, summary.skipped, summary.failed) == (0, 1, 0)
    assert [o.video_id for o in summary.outcomes] == ["b"]

    monitor.finish(done("a"), worker=2)
    summary = monitor.summary()
    assert (summary.done, summary.skipped, summary.failed) == (1, 1, 0)
    assert [o.video_id for o in summary.outcomes] == ["b", "a"]


def test_unknown_video_is_added_to_the_total() -> None:
    monitor = ProgressMonitor()
    monitor.start(["a"], workers=1)
    monitor.stage("late", Stage.FETCHING, worker=0)
    assert monitor.snapshot().total == 2


def test_worker_rows_show_the_current_video_and_go_idle_when_it_ends() -> None:
    monitor = ProgressMonitor()
    monitor.start(["a", "b"], workers=2)
    monitor.set_title("a", "Linear Algebra")
    monitor.stage("a", Stage.FETCHING, worker=1)
    monitor.stage("a", Stage.NOTES)  # no worker given: stays with worker 1
    (row,) = monitor.snapshot().workers
    assert (row.worker, row.video_id, row.title, row.stage) == (1, "a", "Linear Algebra", Stage.NOTES)

    monitor.stage("a", Stage.FETCHING, worker=2)  # moved to another worker (after a renewal)
    rows = {r.worker: r for r in monitor.snapshot().workers}
    assert rows[1].video_id is None
    assert rows[2].video_id == "a"

    monitor.finish(done("a"), worker=2)
    rows = {r.worker: r for r in monitor.snapshot().workers}
    assert (rows[2].video_id, rows[2].stage) == (None, None)


def test_worker_info_gives_exit_and_circuit_age_on_the_monitor_clock() -> None:
    clock = FakeClock()
    monitor = ProgressMonitor(clock=clock)
    monitor.start(["a"], workers=1)
    monitor.worker_info(3, exit_label="exit2 127.0.0.12", circuit_started=monitor.now())
    clock.advance(42)
    monitor.worker_info(3)  # nothing given: nothing forgotten
    (row,) = monitor.snapshot().workers
    assert (row.worker, row.exit_label, row.circuit_age_s) == (3, "exit2 127.0.0.12", 42)


def test_snapshot_rows_are_bounded_and_prefer_active_then_recent() -> None:
    monitor = ProgressMonitor()
    ids = [f"v{i:04d}" for i in range(3000)]
    monitor.start(ids, workers=4)
    for video_id in ids[:100]:
        monitor.finish(done(video_id))
    for worker, video_id in enumerate(ids[100:104]):
        monitor.stage(video_id, Stage.FETCHING, worker=worker)

    snap = monitor.snapshot(max_rows=10)
    assert [r.video_id for r in snap.rows] == [*ids[94:100], *ids[100:104]]
    assert snap.hidden_rows == 3000 - 10

    fresh = ProgressMonitor()
    fresh.start(ids, workers=4)
    assert [r.video_id for r in fresh.snapshot(max_rows=3).rows] == ids[:3]


def test_events_from_many_threads_keep_consistent_counts() -> None:
    threads_n, per_thread = 8, 200
    stream = io.StringIO()
    monitor = ProgressMonitor(PlainView(stream))
    ids = [[f"t{t}v{i:03d}" for i in range(per_thread)] for t in range(threads_n)]
    monitor.start([video_id for chunk in ids for video_id in chunk], workers=threads_n)
    stop_reading = threading.Event()
    reader_errors: list[str] = []

    def work(worker: int) -> None:
        for i, video_id in enumerate(ids[worker]):
            if i % 10 == 9:
                monitor.finish(Outcome(video_id, Stage.SKIPPED, reason="already done"), worker)
                continue
            monitor.stage(video_id, Stage.FETCHING, worker)
            monitor.set_title(video_id, f"Title {video_id}")
            monitor.stage(video_id, Stage.NOTES, worker)
            monitor.stage(video_id, Stage.WRITING, worker)
            monitor.finish(failed(video_id) if i % 10 == 0 else done(video_id), worker)

    def read() -> None:
        for _ in range(10_000):  # bounded; normally stopped much sooner
            if stop_reading.is_set():
                return
            snap = monitor.snapshot()
            if not (snap.finished + snap.active <= snap.total and len(snap.rows) <= 15):
                reader_errors.append(repr(snap))

    reader = threading.Thread(target=read)
    reader.start()
    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads_n)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    stop_reading.set()
    reader.join()

    assert reader_errors == []
    total = threads_n * per_thread
    summary = monitor.summary()
    assert (summary.total, summary.done, summary.skipped, summary.failed) == (total, 1280, 160, 160)
    assert summary.failed_by_kind == {"permanent": 160}
    assert len(summary.outcomes) == total
    assert len({o.video_id for o in summary.outcomes}) == total
    snap = monitor.snapshot()
    assert snap.active == 0
    assert all(row.video_id is None for row in snap.workers)

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 + 1280 * 4 + 160 * 4 + 160  # header + 3 stages and a finish per processed video
    finish_lines = [
        line for line in lines if " done  " in line or " failed  " in line or " skipped  " in line
    ]
    assert len(finish_lines) == total
    # the plain view prints every event once, in order: the finished counter never goes back
    counters = [int(line[1 : line.index("/")]) for line in lines[1:]]
    assert counters == sorted(counters)
    assert counters[-1] == total


# --- ETA ----------------------------------------------------------------------------------------------


def test_eta_uses_mean_time_of_finished_videos_and_workers() -> None:
    clock = FakeClock()
    monitor = ProgressMonitor(clock=clock)
    monitor.start(["a", "b", "c", "d", "e", "f"], workers=2)
    assert monitor.snapshot().eta_s is None  # nothing timed yet

    monitor.finish(Outcome("f", Stage.SKIPPED, reason="already done"))  # skipped: not timed
    assert monitor.snapshot().eta_s is None

    monitor.stage("a", Stage.FETCHING, worker=0)
    clock.advance(10)
    monitor.finish(done("a"), worker=0)
    monitor.stage("b", Stage.FETCHING, worker=0)
    clock.advance(20)
    monitor.finish(failed("b"), worker=0)
    # mean 15 s, 3 videos left (c, d, e) shared by 2 workers
    assert monitor.snapshot().eta_s == pytest.approx(15 * 3 / 2)

    monitor.finish(done("c"))
    monitor.finish(done("d"))
    assert monitor.snapshot().eta_s == pytest.approx(15)  # one left: one worker works on it

    monitor.finish(done("e"))
    assert monitor.snapshot().eta_s == 0.0


def test_elapsed_stops_at_close() -> None:
    clock = FakeClock()
    monitor = ProgressMonitor(clock=clock)
    monitor.start(["a"], workers=1)
    clock.advance(5)
    monitor.close()
    clock.advance(100)
    assert monitor.summary().elapsed_s == 5


# --- views ---------------------------------------------------------------------------------------------


def test_monitor_drives_its_view_and_close_stops_it_once() -> None:
    view = RecordingView()
    monitor = ProgressMonitor(view)
    monitor.start(["a"], workers=1)
    monitor.stage("a", Stage.FETCHING, worker=0)
    monitor.set_title("a", "T")
    monitor.worker_info(0, exit_label="x")
    monitor.finish(done("a"), worker=0)
    monitor.close()
    monitor.close()
    assert (view.started, view.updates) == (1, 4)
    assert len(view.summaries) == 1
    assert view.summaries[0].done == 1


def test_plain_view_lines() -> None:
    stream = io.StringIO()
    monitor = ProgressMonitor(PlainView(stream), clock=FakeClock())
    monitor.start(["abc123def45", "zyx987wvu65", "qqq111rrr22"], workers=2)
    monitor.stage("abc123def45", Stage.FETCHING, worker=1)
    monitor.set_title("abc123def45", "Title")
    monitor.stage("abc123def45", Stage.NOTES, worker=1)
    monitor.finish(done("abc123def45", "Title"), worker=1)
    monitor.finish(failed("zyx987wvu65"), worker=2)
    monitor.finish(Outcome("qqq111rrr22", Stage.SKIPPED, "Old", None, "already done", None))
    monitor.close()
    assert stream.getvalue().splitlines() == [
        "3 videos, 2 workers",
        "[0/3] fetching  abc123def45",
        "[0/3] writing notes  Title (abc123def45)",
        "[1/3] done  Title (abc123def45) -> notes/Title.md",
        "[2/3] failed  zyx987wvu65: transcripts are disabled",
        "[3/3] skipped  Old (qqq111rrr22): already done",
    ]  # no summary: the caller prints it


def test_quiet_view_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    monitor = ProgressMonitor(QuietView())
    monitor.start(["a"], workers=1)
    monitor.finish(done("a"))
    monitor.close()
    assert capsys.readouterr() == ("", "")


def test_rich_view_renders_workers_counts_and_failures() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    clock = FakeClock()
    monitor = ProgressMonitor(RichView(console), clock=clock)
    monitor.start(["abc123def45", "zyx987wvu65", "qqq111rrr22"], workers=2)
    monitor.worker_info(1, exit_label="exit1 127.0.0.11", circuit_started=monitor.now())
    monitor.worker_info(2, exit_label="exit3 127.0.0.13", circuit_started=monitor.now())
    monitor.stage("abc123def45", Stage.FETCHING, worker=1)
    monitor.set_title("abc123def45", "Fourier Series")
    monitor.stage("abc123def45", Stage.NOTES, worker=1)
    monitor.stage("zyx987wvu65", Stage.FETCHING, worker=2)
    clock.advance(65)
    monitor.finish(failed("zyx987wvu65", "transcripts are disabled"), worker=2)
    console.print(render_snapshot(monitor.snapshot()))  # what Live shows mid-run
    mid_run = plain_text(console)
    monitor.finish(done("abc123def45"), worker=1)
    monitor.close()
    text = plain_text(console)

    assert "w1" in mid_run and "Fourier Series (abc123def45)" in mid_run and "writing notes" in mid_run
    assert "exit1 127.0.0.11" in mid_run and "exit3 127.0.0.13" in mid_run
    assert re.search(r"exit1 127\.0\.0\.11\s*│\s*1:05", mid_run)  # circuit age
    assert "1/3 33%" in mid_run and "failed 1" in mid_run
    assert "transcripts are disabled" in mid_run
    # the final frame stays on screen (transient=False); the summary is the caller's to print
    last_frame = text[len(mid_run) :]
    assert "2/3 67%" in last_frame and "done 1 · skipped 0 · failed 1" in last_frame
    assert "videos in" not in text


def test_rich_rendering_of_many_videos_shows_how_many_are_hidden() -> None:
    monitor = ProgressMonitor()
    monitor.start([f"v{i:05d}" for i in range(5000)], workers=4)
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    console.print(render_snapshot(monitor.snapshot(max_rows=15)))
    text = plain_text(console)
    assert "… 4985 more" in text
    assert "v00014" in text and "v00015" not in text
    assert "ETA --:--" in text


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_make_view_picks_by_output() -> None:
    assert isinstance(make_view(json_output=True, stream=FakeTerminal()), QuietView)
    assert isinstance(make_view(json_output=False, stream=FakeTerminal()), RichView)
    assert isinstance(make_view(json_output=False, stream=io.StringIO()), PlainView)


# --- summary --------------------------------------------------------------------------------------------


def test_summary_json_shape() -> None:
    clock = FakeClock()
    monitor = ProgressMonitor(clock=clock)
    monitor.start(["a", "b", "c"], workers=1)
    monitor.finish(done("a", "Alpha"))
    monitor.finish(failed("b"))
    monitor.finish(
        Outcome("c", Stage.FAILED, None, ErrorKind.BLOCKED.value, "exit keeps being blocked", None)
    )
    clock.advance(12.3456)
    data = monitor.summary().to_json()
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "total": 3,
        "done": 1,
        "skipped": 0,
        "failed": 2,
        "failed_by_kind": {"blocked": 1, "permanent": 1},
        "elapsed_s": 12.346,
        "outcomes": [
            {
                "video_id": "a",
                "stage": "done",
                "title": "Alpha",
                "kind": None,
                "reason": None,
                "note_path": "notes/Alpha.md",
            },
            {
                "video_id": "b",
                "stage": "failed",
                "title": None,
                "kind": "permanent",
                "reason": "transcripts are disabled",
                "note_path": None,
            },
            {
                "video_id": "c",
                "stage": "failed",
                "title": None,
                "kind": "blocked",
                "reason": "exit keeps being blocked",
                "note_path": None,
            },
        ],
    }


def test_format_summary_lists_failures_and_caps_the_list() -> None:
    outcomes = tuple(failed(f"v{i:02d}", f"reason {i}") for i in range(25))
    summary = Summary(
        total=40,
        done=10,
        skipped=5,
        failed=25,
        failed_by_kind={"permanent": 25},
        elapsed_s=3725,
        outcomes=(done("ok", "Fine"), *outcomes),
    )
    lines = format_summary(summary).splitlines()
    assert lines[0] == "40 videos in 1:02:05: 10 done, 5 skipped, 25 failed (permanent 25)"
    assert lines[1] == "  failed  v00: reason 0"
    assert len(lines) == 1 + 20 + 1
    assert lines[-1] == "  … and 5 more failures"


def test_format_summary_without_failures() -> None:
    summary = Summary(5, 5, 0, 0, {}, 59.6, ())
    assert format_summary(summary) == "5 videos in 1:00: 5 done, 0 skipped, 0 failed"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00"), (61, "1:01"), (3600, "1:00:00"), (7322.4, "2:02:02")]
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_a_long_run_keeps_its_counts_but_only_recent_rows_and_failed_outcomes() -> None:
    monitor = ProgressMonitor(all_outcomes=False)
    ids = [f"vid{n:08d}" for n in range(1000)]
    monitor.start(ids, workers=2)
    for n, video_id in enumerate(ids):
        monitor.stage(video_id, Stage.FETCHING, worker=0)
        monitor.finish(failed(video_id) if n % 100 == 0 else done(video_id), worker=0)
    summary = monitor.summary()
    assert (summary.total, summary.done, summary.failed) == (1000, 990, 10)
    assert [o.video_id for o in summary.outcomes] == ids[::100]  # failures only: nothing per done video
    assert [row.video_id for row in monitor.snapshot(max_rows=1000).rows] == ids[-FINISHED_KEPT:]

    monitor.stage(ids[0], Stage.FETCHING, worker=1)  # a video finished long ago comes back (a retry)
    assert monitor.snapshot().active == 1
    monitor.finish(done(ids[0]), worker=1)
    summary = monitor.summary()
    assert (summary.total, summary.done, summary.failed) == (1000, 991, 9)
    assert monitor.snapshot().eta_s == 0.0
