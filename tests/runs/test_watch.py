"""Watch mode (no overlap, skipped checks, stop and SIGTERM), cross-process claims and the retry schedule."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from click.testing import CliRunner

from studybuddy.cli.main import cli
from studybuddy.config import Settings
from studybuddy.errors import ErrorKind, InputError, StudyBuddyError
from studybuddy.runs.admission import Admission, RetrySchedule
from studybuddy.runs.pipeline import Pipeline
from studybuddy.runs.progress_records import Summary
from studybuddy.runs.watch import Watcher, WatchStats, run_check, stop_on_sigterm
from studybuddy.store.archive import Archive
from studybuddy.store.archive_rows import ArchiveRow, Status
from tests.fakes import youtube_lists as yl
from tests.fakes.youtube_mock import MockYouTube, video
from tests.youtube.test_expand import CHANNEL_ID, CHANNEL_URL, PLAYLIST_ID, PLAYLIST_URL, FakeSite, listed

T0 = 1_750_000_000.0
EMPTY = Summary(0, 0, 0, 0, {}, 0.0, ())
IDS = [f"vid{n:08d}" for n in range(20)]


ISO_T0 = "2025-06-15T15:00:00.000+00:00"


def mark_done(archive: Archive, video_id: str) -> None:
    archive.record_done(video_id)


def run_until(watcher: Watcher, event: threading.Event) -> WatchStats:
    """Run the watcher in a thread; once `event` is set, stop it and return what it did."""
    stats: list[WatchStats] = []
    thread = threading.Thread(target=lambda: stats.append(watcher.run()))
    thread.start()
    assert event.wait(30)
    watcher.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return stats[0]


# watcher


def test_a_running_check_makes_ticks_skip_never_queue_and_checks_never_overlap() -> None:
    started, release = threading.Semaphore(0), threading.Event()
    active = peak = 0
    lock = threading.Lock()

    def slow_check(stop: threading.Event) -> Summary:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        started.release()
        assert release.wait(30)
        with lock:
            active -= 1
        return dataclasses.replace(EMPTY, done=1)

    watcher = Watcher(slow_check, interval_s=60)  # ticks are driven by hand below
    assert watcher.tick()
    assert started.acquire(timeout=30)
    assert [watcher.tick() for _ in range(3)] == [False, False, False]  # skipped while one runs
    release.set()
    watcher.wait_for_check()
    assert watcher.tick()  # the next tick after the check ended starts one again
    assert started.acquire(timeout=30)
    watcher.wait_for_check()
    stats = watcher.stats
    assert (stats.checks_run, stats.checks_skipped, stats.videos_done, peak) == (2, 3, 2, 1)


def test_run_ticks_until_stopped() -> None:
    calls = 0

    def check(stop: threading.Event) -> Summary:
        nonlocal calls
        calls += 1
        if calls == 3:
            watcher.stop()  # as Ctrl-C would, during the third check
        return dataclasses.replace(EMPTY, done=1)

    watcher = Watcher(check, interval_s=0.01)
    stats = watcher.run()
    assert (stats.checks_run, stats.videos_done, calls) == (3, 3, 3)


def test_the_lock_is_released_when_checks_fail() -> None:
    errors = iter([StudyBuddyError("Tor is gone"), RuntimeError("bug")] * 2)

    def failing_check(stop: threading.Event) -> Summary:
        raise next(errors)

    watcher = Watcher(failing_check, interval_s=60)
    for _ in range(4):
        assert watcher.tick()  # never skipped: a failed check (or one that crashed) releases the lock
        watcher.wait_for_check()
    stats = watcher.stats
    assert (stats.checks_run, stats.checks_failed, stats.checks_skipped) == (4, 4, 0)


def test_stop_lets_the_running_check_finish_its_videos() -> None:
    running, seen_stop = threading.Event(), threading.Event()

    def check(stop: threading.Event) -> Summary:
        running.set()
        assert stop.wait(30)  # a pipeline finishes the videos in progress, then returns
        seen_stop.set()
        return dataclasses.replace(EMPTY, done=2, failed=1)

    stats = run_until(Watcher(check, interval_s=60), running)
    assert seen_stop.is_set()
    assert (stats.checks_run, stats.videos_done, stats.videos_failed) == (1, 2, 1)
    assert stats.report() == "Watch stopped: 1 check(s) run, 0 skipped (0 failed); 2 video(s) done, 1 failed."


def test_sigterm_stops_the_watcher_and_its_handler_is_put_back() -> None:
    calls = 0

    def check(stop: threading.Event) -> Summary:
        nonlocal calls
        calls += 1
        if calls == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # as `docker stop` sends it
            assert stop.wait(30)  # the handler stops the watcher, and so this check
        return EMPTY

    watcher = Watcher(check, interval_s=0.01)
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_sigterm(watcher):
        stats = watcher.run()
    assert stats.checks_run == 2
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_stop_while_a_check_lists_a_playlist_is_no_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(output=tmp_path / "notes", tor="off", engine="offline")
    warnings: list[str] = []
    watcher = Watcher(
        run_check(settings, [PLAYLIST_URL, CHANNEL_URL], [], warn=warnings.append), interval_s=3600
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        site = FakeSite(mock)
        site.add(PLAYLIST_URL, yl.FakeList(PLAYLIST_ID, "Course", listed(3)))
        site.add(CHANNEL_URL, yl.FakeList(CHANNEL_ID, "Lectures", listed(5), is_channel=True))
        site.on_page = lambda url: watcher.stop()  # Ctrl-C or SIGTERM while the first list is read
        stats = watcher.run()
    assert [url for url in site.requests if url != "browse"] == [PLAYLIST_URL]
    assert (stats.checks_run, stats.checks_failed, stats.videos_failed) == (1, 0, 0)
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
    assert not any(record.exc_info for record in caplog.records)  # no traceback
    assert warnings == []


@pytest.mark.parametrize("interval", [0, -5, float("nan")])
def test_interval_must_be_positive(interval: float) -> None:
    with pytest.raises(InputError, match="--interval"):
        Watcher(lambda stop: EMPTY, interval_s=interval)


def test_cli_interval_zero_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["watch", "--interval", "0", "-o", str(tmp_path), "vid00000001"])
    assert result.exit_code != 0
    assert "--interval 0: must be more than 0 seconds" in result.output
    assert "Traceback" not in result.output


# retry schedule


def test_backoff_doubles_is_capped_and_gives_up() -> None:
    schedule = RetrySchedule(base_s=60, cap_s=300, max_attempts=5)
    assert [schedule.delay(n) for n in range(1, 7)] == [60, 120, 240, 300, None, None]


def test_failures_are_scheduled_in_the_archive_and_given_up_after_max_attempts(tmp_path: Path) -> None:
    schedule = RetrySchedule(base_s=60, cap_s=3600, max_attempts=3)
    with Archive.open(tmp_path) as archive:
        statuses = []
        for attempt in range(3):
            archive.start("vid00000001")
            statuses.append(
                archive.record_failed(
                    "vid00000001", ErrorKind.BLOCKED, "bot check", retry_delay=schedule.delay, now=T0
                )
            )
            row = archive.get("vid00000001")
            assert row is not None and row.failures == attempt + 1
        assert statuses == [Status.FAILED, Status.FAILED, Status.GAVE_UP]
        assert row.next_retry_at is None and len(archive.rows()) == 1  # one row, one state
        archive.record_failed("vid00000002", ErrorKind.TRANSIENT, "503", retry_delay=schedule.delay, now=T0)
        archive.record_failed("vid00000003", ErrorKind.PERMANENT, "no captions", retry_delay=schedule.delay)
        transient, permanent = archive.get("vid00000002"), archive.get("vid00000003")
        assert transient is not None and transient.next_retry_at == "2025-06-15T15:07:40.000+00:00"
        assert permanent is not None and (permanent.status, permanent.next_retry_at) == (Status.FAILED, None)
        mark_done(archive, "vid00000002")
        done = archive.get("vid00000002")
        assert done is not None and (done.failures, done.next_retry_at) == (0, None)


def test_admission_rules_for_watch_retry_and_plain_runs(tmp_path: Path) -> None:
    schedule = RetrySchedule(base_s=60, max_attempts=2)
    with Archive.open(tmp_path) as archive:
        archive.record_failed("vid00000001", ErrorKind.BLOCKED, "x", retry_delay=schedule.delay, now=T0)
        for _ in range(2):
            archive.record_failed("vid00000002", ErrorKind.BLOCKED, "x", retry_delay=schedule.delay, now=T0)
        archive.record_failed("vid00000003", ErrorKind.PERMANENT, "x", retry_delay=schedule.delay, now=T0)
        failed, gave_up, permanent = (archive.get(f"vid0000000{n}") for n in (1, 2, 3))
    watch = Admission(due_only=True)
    assert (
        watch.skip_reason(failed, T0 + 59) == "failed (blocked); next retry at 2025-06-15T15:07:40.000+00:00"
    )
    assert watch.skip_reason(failed, T0 + 61) is None
    assert "gave up after 2 failed attempts" in (watch.skip_reason(gave_up, T0 + 10**6) or "")
    assert "failed before (permanent)" in (Admission().skip_reason(permanent, T0) or "")
    assert Admission().skip_reason(failed, T0) is None  # a plain run retries at once
    retry_all = Admission(gave_up=True)
    assert retry_all.skip_reason(gave_up, T0) is None
    assert Admission(kinds=frozenset({ErrorKind.PERMANENT})).skip_reason(permanent, T0) is None


def test_archive_list_shows_given_up_videos(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as archive:
        archive.record_failed("vid00000001", ErrorKind.BLOCKED, "bot check", retry_delay=lambda n: None)
    result = CliRunner().invoke(cli, ["archive", "list", "-o", str(tmp_path), "--status", "gave_up"])
    assert result.exit_code == 0, result.output
    assert "vid00000001  gave_up:blocked" in result.output


@pytest.mark.parametrize(
    ("status", "kind", "force", "expected"),
    [
        (Status.DONE, None, False, False),
        (Status.DONE, None, True, True),
        (Status.FAILED, ErrorKind.PERMANENT, False, False),
        (Status.FAILED, ErrorKind.PERMANENT, True, True),
        (Status.FAILED, ErrorKind.TRANSIENT, False, True),
        (Status.FAILED, ErrorKind.BLOCKED, False, True),
        (Status.FAILED, ErrorKind.NOTES, False, True),
        (Status.FAILED, ErrorKind.OUTPUT, False, True),
        (Status.RUNNING, None, False, True),
        (Status.RUNNING, None, True, True),
    ],
)
def test_which_videos_a_plain_run_takes(
    status: Status, kind: ErrorKind | None, force: bool, expected: bool
) -> None:
    row = ArchiveRow(
        video_id="vid00000001",
        status=status,
        error_kind=kind,
        error=None,
        attempts=1,
        title=None,
        channel=None,
        note_path=None,
        transcript_path=None,
        exit_fingerprint=None,
        input_tokens=None,
        output_tokens=None,
        cache_read_tokens=None,
        cache_write_tokens=None,
        model=None,
        first_seen_at=ISO_T0,
        started_at=None,
        finished_at=None,
        elapsed_s=None,
        updated_at=ISO_T0,
    )
    assert (Admission(force=force).skip_reason(row, time.time()) is None) is expected


@pytest.mark.parametrize("force", [False, True])
def test_a_new_video_is_always_taken(force: bool) -> None:
    assert Admission(force=force).skip_reason(None, time.time()) is None


# claims


def test_claims_exclude_other_runs_until_released_or_expired(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as first, Archive.open(tmp_path) as second:
        assert first.claim("vid00000001", "a", ttl_s=10, now=T0).granted
        denied = second.claim("vid00000001", "b", ttl_s=10, now=T0 + 5)
        assert (denied.granted, denied.holder) == (False, "a")
        assert first.renew_claims("a", ttl_s=10, now=T0 + 8) == 1
        assert not second.claim("vid00000001", "b", ttl_s=10, now=T0 + 15).granted  # renewed until T0+18
        assert second.claim("vid00000001", "b", ttl_s=10, now=T0 + 19).granted  # expired
        first.release("vid00000001", "a")  # no longer its claim: nothing changes
        assert not first.claim("vid00000001", "a", ttl_s=10, now=T0 + 20).granted
        second.release("vid00000001", "b")
        assert first.claim("vid00000001", "a", ttl_s=10, now=T0 + 20).granted


def _claim_and_hang(root: str, ready: multiprocessing.synchronize.Event) -> None:
    with Archive.open(Path(root)) as archive:
        assert archive.claim("vid00000001", "doomed", ttl_s=30).granted
        ready.set()
        time.sleep(60)


def test_a_claim_left_by_a_killed_process_expires(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    child = context.Process(target=_claim_and_hang, args=(str(tmp_path), ready))
    child.start()
    try:
        assert ready.wait(30)
    finally:
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join(10)
    with Archive.open(tmp_path) as archive:
        assert not archive.claim("vid00000001", "next", ttl_s=30).granted
        assert archive.claim("vid00000001", "next", ttl_s=30, now=time.time() + 31).granted


def _work_through(root: str, owner: str, log_path: str, start: multiprocessing.synchronize.Event) -> None:
    start.wait(30)
    with Archive.open(Path(root)) as archive:
        for video_id in IDS:
            claim = archive.claim(video_id, owner, ttl_s=30)
            if not claim.granted:
                continue
            if Admission().skip_reason(claim.row, time.time()) is not None:  # the other one did it
                archive.release(video_id, owner)
                continue
            archive.start(video_id)
            with open(log_path, "a") as log:
                log.write(f"{video_id} {owner}\n")
            time.sleep(0.02)
            mark_done(archive, video_id)
            archive.release(video_id, owner)


def test_two_processes_on_one_folder_never_process_a_video_twice(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    log_path = tmp_path / "processed.log"
    workers = [
        context.Process(target=_work_through, args=(str(tmp_path), owner, str(log_path), start))
        for owner in ("one", "two")
    ]
    for process in workers:
        process.start()
    start.set()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    lines = log_path.read_text().split()
    counts = Counter(lines[0::2])
    assert counts == dict.fromkeys(IDS, 1)
    with Archive.open(tmp_path) as archive:
        assert {row.status for row in archive.rows()} == {Status.DONE}
        assert all(row.claimed_by is None for row in archive.rows())


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as requests_mock:
        yield requests_mock


def test_pipeline_skips_videos_claimed_by_another_run_and_releases_its_own(
    tmp_path: Path, mock: responses.RequestsMock
) -> None:
    youtube = MockYouTube.of(video(n) for n in range(2))
    youtube.install(mock)
    settings = Settings(output=tmp_path, notes=False, backoff_s=0.001)
    with Archive.open(tmp_path) as archive:
        assert archive.claim("vid00000000", "other-host:1:run", ttl_s=60).granted
        pipeline = Pipeline.from_settings(settings, archive)
        summary = pipeline.run(["vid00000000", "vid00000001"])
        reasons = {o.video_id: o.reason for o in summary.outcomes}
        assert (summary.done, summary.skipped) == (1, 1)
        assert reasons["vid00000000"] == "claimed by another run (other-host:1:run)"
        assert youtube.requests_for("vid00000000") == 0
        done = archive.get("vid00000001")
        assert done is not None and (done.status, done.claimed_by) == (Status.DONE, None)
