"""Tests for studybuddy.admission: which failed videos come back, and when."""

from __future__ import annotations

import time
from pathlib import Path

from studybuddy.errors import ErrorKind
from studybuddy.runs.admission import ALREADY_DONE, RETRIED_KINDS, Admission, RetrySchedule
from studybuddy.store.archive import Archive
from studybuddy.store.archive_rows import Status


def test_a_bug_is_retried_only_when_asked(tmp_path: Path) -> None:
    now = time.time()
    with Archive.open(tmp_path) as archive:
        status = archive.record_failed(
            "vid00000001", ErrorKind.ERROR, "a bug", retry_delay=RetrySchedule(max_attempts=1).delay, now=now
        )
        row = archive.get("vid00000001")
    assert row is not None
    assert (status, row.next_retry_at) == (Status.FAILED, None)  # never scheduled, never given up
    assert ErrorKind.ERROR not in RETRIED_KINDS
    assert "failed before (error)" in (Admission().skip_reason(row, now) or "")
    assert "failed before (error)" in (Admission(due_only=True).skip_reason(row, now + 10**6) or "")
    assert Admission(kinds=frozenset({ErrorKind.ERROR}), gave_up=True).skip_reason(row, now) is None


def test_a_run_looks_up_done_videos_by_id_and_builds_rows_only_for_the_rest(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as archive:
        archive.record_done("done0000001", title="Done", note_path=tmp_path / "Done.md")
        archive.record_failed("fail0000001", ErrorKind.TRANSIENT, "timeout")
        asked = ["done0000001", "fail0000001", "new00000001"]
        found = Admission().look_up(archive, asked)
        forced = Admission(force=True).look_up(archive, asked)
        row = archive.get("done0000001")
    assert found.done == {"done0000001": "Done"}
    assert set(found.rows) == {"fail0000001"}
    assert (forced.done, set(forced.rows)) == ({}, {"done0000001", "fail0000001"})
    assert Admission().skip_reason(row, time.time()) == ALREADY_DONE  # the same decision, row by row
