"""Tests for studybuddy.archive: opening, recording, queries, threads and processes; on both backends (the
SQLite file, and a database on the session's PostgreSQL server) unless a test is about one engine."""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.synchronize
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from studybuddy.errors import ArchiveError, ErrorKind
from studybuddy.models import Usage
from studybuddy.store.archive import Archive
from studybuddy.store.archive_rows import ArchiveRow, Status
from studybuddy.store.archive_sql import POSTGRES, SQLITE, Db

T0 = "2025-01-01T00:00:00.000+00:00"


def raw(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / Archive.FILENAME)


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest) -> str | None:
    """The `--archive` of the test: None (the SQLite file of each folder) or a new PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("fresh_database")()


@contextmanager
def raw_db(where: str | None, root: Path) -> Iterator[Db]:
    """A connection of the test's own to the archive (autocommit), in the archive's SQL dialect."""
    if where is None:
        connection = sqlite3.connect(root / Archive.FILENAME, isolation_level=None)
        try:
            yield Db(connection, SQLITE)
        finally:
            connection.close()
        return
    import psycopg

    with psycopg.connect(where, autocommit=True) as connection:
        yield Db(connection, POSTGRES)


def record_done(archive: Archive, video_id: str, **changes: object) -> None:
    fields: dict[str, object] = {
        "title": "A title",
        "channel": "A channel",
        "note_path": None,
        "transcript_path": None,
        "usage": Usage(10, 20, 3, 4),
        "model": "claude-test",
        "exit_fingerprint": "F" * 40,
        "elapsed_s": 1.5,
    }
    fields.update(changes)
    archive.record_done(video_id, **fields)  # type: ignore[arg-type]


@pytest.fixture
def archive(tmp_path: Path, where: str | None):
    with Archive.open(tmp_path, where) as opened:
        yield opened


# opening (migrations: test_migrations.py)


def test_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / Archive.FILENAME).write_bytes(b"this is not SQLite\n" * 100)
    with pytest.raises(ArchiveError, match=r"\.study-buddy\.sqlite3: not a usable study-buddy archive"):
        Archive.open(tmp_path)


def test_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file", encoding="utf-8")
    with pytest.raises(ArchiveError, match=r"out/\.study-buddy\.sqlite3"):
        Archive.open(tmp_path / "out")


def test_closed_archive_raises_archive_error(tmp_path: Path, where: str | None) -> None:
    with Archive.open(tmp_path, where) as archive:
        pass
    with pytest.raises(ArchiveError, match="cannot read"):
        archive.get("vid00000001")
    with pytest.raises(ArchiveError, match="cannot write"):
        archive.start("vid00000001")


def test_unknown_error_kind_in_a_row_is_an_archive_error(
    archive: Archive, tmp_path: Path, where: str | None
) -> None:
    archive.record_failed("vid00000001", ErrorKind.TRANSIENT, "timeout")
    with raw_db(where, tmp_path) as db:
        db.execute("UPDATE videos SET error_kind = 'alien'")
    with pytest.raises(ArchiveError, match="vid00000001"):
        archive.get("vid00000001")


# recording


def test_start_counts_attempts_and_marks_running(archive: Archive) -> None:
    archive.start("vid00000001")
    first = archive.get("vid00000001")
    archive.start("vid00000001")
    second = archive.get("vid00000001")
    assert first is not None
    assert second is not None
    assert (first.status, first.attempts) == (Status.RUNNING, 1)
    assert (second.status, second.attempts) == (Status.RUNNING, 2)
    assert second.first_seen_at == first.first_seen_at
    assert second.started_at is not None
    assert second.started_at.endswith("+00:00")


def test_record_done_fills_the_row_and_clears_the_error(archive: Archive, tmp_path: Path) -> None:
    archive.start("vid00000001")
    archive.record_failed("vid00000001", ErrorKind.BLOCKED, "blocked", title="Intro")
    archive.start("vid00000001")
    record_done(
        archive,
        "vid00000001",
        title=None,
        note_path=tmp_path / "Math" / "Intro.md",
        transcript_path=tmp_path / "Math" / "Intro.transcript.txt",
    )
    row = archive.get("vid00000001")
    assert row is not None
    timestamps = {"first_seen_at": "", "started_at": None, "finished_at": None, "updated_at": ""}
    assert dataclasses.replace(row, **timestamps) == ArchiveRow(
        video_id="vid00000001",
        status=Status.DONE,
        error_kind=None,
        error=None,
        attempts=2,
        title="Intro",  # kept: this run did not know the title
        channel="A channel",
        note_path=tmp_path / "Math" / "Intro.md",
        transcript_path=tmp_path / "Math" / "Intro.transcript.txt",
        exit_fingerprint="F" * 40,
        input_tokens=10,
        output_tokens=20,
        cache_read_tokens=3,
        cache_write_tokens=4,
        model="claude-test",
        elapsed_s=1.5,
        **timestamps,
    )
    assert row.started_at is not None
    assert row.finished_at is not None
    assert row.first_seen_at <= row.started_at <= row.finished_at == row.updated_at


def test_paths_are_stored_relative_to_the_root(archive: Archive, tmp_path: Path, where: str | None) -> None:
    record_done(archive, "vid00000001", note_path=tmp_path / "Math" / "Intro.md")
    record_done(archive, "vid00000002", note_path=tmp_path.parent / "elsewhere.md")
    with raw_db(where, tmp_path) as db:
        stored = dict(db.execute("SELECT video_id, note_path FROM videos").fetchall())
    assert stored == {
        "vid00000001": "Math/Intro.md",
        "vid00000002": (tmp_path.parent / "elsewhere.md").as_posix(),
    }
    elsewhere = archive.get("vid00000002")
    assert elsewhere is not None
    assert elsewhere.note_path == tmp_path.parent / "elsewhere.md"


def test_archive_moved_with_its_folder_still_finds_its_notes(tmp_path: Path, where: str | None) -> None:
    with Archive.open(tmp_path / "before", where) as archive:  # on a server: another machine's mount point
        record_done(archive, "vid00000001", note_path=tmp_path / "before" / "Intro.md")
    (tmp_path / "before").mkdir(exist_ok=True)  # the notes' folder (a server's archive makes none)
    (tmp_path / "before").rename(tmp_path / "after")
    with Archive.open(tmp_path / "after", where) as archive:
        row = archive.get("vid00000001")
    assert row is not None
    assert row.note_path == tmp_path / "after" / "Intro.md"


def test_record_done_without_start_and_without_usage(archive: Archive) -> None:
    record_done(archive, "vid00000001", usage=None)
    row = archive.get("vid00000001")
    assert row is not None
    assert (row.status, row.attempts, row.input_tokens, row.cache_write_tokens) == (
        Status.DONE,
        1,
        None,
        None,
    )


def test_record_failed_keeps_one_short_line_and_the_note_path(archive: Archive, tmp_path: Path) -> None:
    record_done(archive, "vid00000001", note_path=tmp_path / "Intro.md")
    archive.start("vid00000001")
    archive.record_failed(
        "vid00000001", ErrorKind.NOTES, "first line\nsecond\tline  " + "x" * 1000, elapsed_s=2.0
    )
    row = archive.get("vid00000001")
    assert row is not None
    assert (row.status, row.error_kind, row.attempts, row.elapsed_s) == (
        Status.FAILED,
        ErrorKind.NOTES,
        2,
        2.0,
    )
    assert row.error is not None
    assert row.error.startswith("first line second line xxx")
    assert "\n" not in row.error
    assert len(row.error) == 500
    assert row.note_path == tmp_path / "Intro.md"
    assert row.title == "A title"


def test_start_clears_the_previous_failure(archive: Archive) -> None:
    archive.record_failed("vid00000001", ErrorKind.TRANSIENT, "timeout", elapsed_s=1.0)
    archive.start("vid00000001")
    row = archive.get("vid00000001")
    assert row is not None
    assert (row.status, row.error_kind, row.error, row.finished_at, row.elapsed_s) == (
        Status.RUNNING,
        None,
        None,
        None,
        None,
    )


# queries


def test_rows_filter_by_status_and_kind(archive: Archive) -> None:
    record_done(archive, "done0000001")
    archive.record_failed("perm0000001", ErrorKind.PERMANENT, "transcripts disabled")
    archive.record_failed("perm0000002", ErrorKind.PERMANENT, "video unavailable")
    archive.record_failed("tran0000001", ErrorKind.TRANSIENT, "timeout")
    archive.start("runn0000001")

    def ids(rows: list[ArchiveRow]) -> list[str]:
        return sorted(row.video_id for row in rows)

    assert len(archive.rows()) == 5
    assert ids(archive.rows(Status.FAILED)) == ["perm0000001", "perm0000002", "tran0000001"]
    assert ids(archive.rows(kind=ErrorKind.PERMANENT)) == ["perm0000001", "perm0000002"]
    assert ids(archive.rows(Status.FAILED, ErrorKind.TRANSIENT)) == ["tran0000001"]
    assert ids(archive.rows(Status.DONE, ErrorKind.TRANSIENT)) == []
    assert ids(archive.rows(Status.RUNNING)) == ["runn0000001"]


def test_get_unknown_video(archive: Archive) -> None:
    assert archive.get("nothere0001") is None
    assert archive.get_many([]) == {}


def test_get_many_with_10k_ids_against_5k_rows(archive: Archive, tmp_path: Path, where: str | None) -> None:
    stored = [f"vid{i:08d}" for i in range(5000)]
    with raw_db(where, tmp_path) as db:
        db.executemany(
            "INSERT INTO videos (video_id, status, attempts, first_seen_at, updated_at) "
            "VALUES (?, 'done', 1, ?, ?)",
            [(video_id, T0, T0) for video_id in stored],
        )
    asked = stored[::2] + [f"new{i:08d}" for i in range(7500)] + stored[:10]  # duplicates too
    assert len(asked) == 10_010
    found = archive.get_many(asked)
    assert set(found) == set(stored[::2]) | set(stored[:10])
    assert all(row.video_id == video_id and row.status is Status.DONE for video_id, row in found.items())


def test_done_titles_are_the_done_videos_asked_for_only_and_none_pending_in_a_batch(
    archive: Archive, tmp_path: Path, where: str | None
) -> None:
    done = [f"done{i:07d}" for i in range(1200)]  # more than one query's worth of ids on SQLite
    with raw_db(where, tmp_path) as db:
        db.executemany(
            "INSERT INTO videos (video_id, status, attempts, first_seen_at, updated_at, title)"
            " VALUES (?, 'done', 1, ?, ?, ?)",
            [
                (video_id, T0, T0, f"Title of {video_id}" if video_id != done[7] else None)
                for video_id in done
            ],
        )
    archive.record_failed("fail0000001", ErrorKind.TRANSIENT, "timeout")
    archive.enqueue(["queu0000001"])
    archive.record_batch("msgbatch_1", "claude-test", {done[3]: "{}"})  # redone by force, sent in a batch
    asked = [*done[::3], done[7], "fail0000001", "queu0000001", "new00000001", done[0]]
    titles = archive.done_titles(asked)
    assert set(titles) == (set(done[::3]) | {done[7]}) - {done[3]}
    assert titles[done[0]] == f"Title of {done[0]}" and titles[done[7]] is None
    assert archive.done_titles([]) == {}


# concurrency

VIDEO_IDS = [f"vid{i:08d}" for i in range(20)]


def process_all(archive: Archive, root: Path) -> None:
    for video_id in VIDEO_IDS:
        archive.start(video_id)
        record_done(archive, video_id, note_path=root / f"{video_id}.md")


def process_all_in_own_archive(root: str, where: str | None) -> None:
    with Archive.open(Path(root), where) as archive:
        process_all(archive, Path(root))


def assert_every_video_done(root: Path, attempts: int, where: str | None) -> None:
    with raw_db(where, root) as db:
        assert tuple(db.execute("SELECT count(*) FROM videos").fetchone()) == (len(VIDEO_IDS),)
    with Archive.open(root, where) as archive:
        rows = archive.get_many(VIDEO_IDS)
    assert sorted(rows) == VIDEO_IDS
    for video_id, row in rows.items():
        assert (row.status, row.attempts, row.note_path) == (Status.DONE, attempts, root / f"{video_id}.md")


def test_eight_threads_share_one_archive(archive: Archive, tmp_path: Path, where: str | None) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        try:
            barrier.wait(timeout=10)
            process_all(archive, tmp_path)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert_every_video_done(tmp_path, attempts=8, where=where)


def test_two_processes_share_one_archive(tmp_path: Path, where: str | None) -> None:
    context = multiprocessing.get_context("spawn")
    args = (str(tmp_path), where)
    processes = [context.Process(target=process_all_in_own_archive, args=args) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0]
    assert_every_video_done(tmp_path, attempts=2, where=where)


def _open_each_new_archive(
    archives: list[tuple[str, str | None]], barrier: multiprocessing.synchronize.Barrier
) -> None:
    for root, where in archives:
        barrier.wait(timeout=30)
        with Archive.open(Path(root), where) as archive:
            archive.start("vid00000001")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_creating_the_same_new_archive_at_once_all_succeed(
    tmp_path: Path, backend: str, fresh_database: Callable[[], str]
) -> None:
    # SQLite fails "PRAGMA journal_mode = WAL" at once (no busy wait) while another process converts a new
    # file; before the retry about one open in fifteen failed here. PostgreSQL: the migrations' lock.
    count = 60 if backend == "sqlite" else 15
    archives = [
        (str(tmp_path / f"run{number}"), None if backend == "sqlite" else fresh_database())
        for number in range(count)
    ]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    processes = [context.Process(target=_open_each_new_archive, args=(archives, barrier)) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0, 0]
    for root, where in archives:
        with Archive.open(Path(root), where) as archive:
            row = archive.get("vid00000001")
        assert row is not None
        assert row.attempts == 3


def test_a_write_waits_for_another_writer(archive: Archive, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / Archive.FILENAME, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    archive.start("vid00000001")  # blocks until the other writer commits
    release.join()
    other.close()
    row = archive.get("vid00000001")
    assert row is not None
    assert row.attempts == 1


def test_exit_events_are_kept_for_a_week_and_listed_oldest_first(tmp_path: Path, where: str | None) -> None:
    fp = "A" * 40
    with Archive.open(tmp_path, where) as archive:
        archive.record_exit_event(fp, "use", at=1_000.0)
        archive.record_exit_event(fp, "block", at=2_000.0)
        archive.record_exit_event("B" * 40, "use", at=3_000.0)
        assert archive.exit_events(since=1_500.0) == [(fp, "block", 2_000.0), ("B" * 40, "use", 3_000.0)]
        archive.record_exit_event(fp, "use", at=3_000.0 + 8 * 24 * 3600)  # prunes what is over a week old
        assert [event[2] for event in archive.exit_events(since=0)] == [3_000.0 + 8 * 24 * 3600]


def test_a_batch_keeps_each_videos_note_progress_until_it_is_collected(
    tmp_path: Path, where: str | None
) -> None:
    with Archive.open(tmp_path, where) as archive:
        for video_id in ("aaaaaaaaaaa", "bbbbbbbbbbb"):
            archive.start(video_id)
        archive.record_batch("msgbatch_1", "claude-x", {"aaaaaaaaaaa": '{"a": 1}', "bbbbbbbbbbb": '{"b": 2}'})
        assert archive.batch_plans("msgbatch_1") == {"aaaaaaaaaaa": '{"a": 1}', "bbbbbbbbbbb": '{"b": 2}'}
        archive.record_batch("msgbatch_2", "claude-x", {"bbbbbbbbbbb": '{"b": 3}'})  # its next calls
        archive.record_done("aaaaaaaaaaa", elapsed_s=1.0, batch_id="msgbatch_1")
        assert archive.batch_plans("msgbatch_1") == {}
        assert archive.batch_plans("msgbatch_2") == {"bbbbbbbbbbb": '{"b": 3}'}
        archive.close_batch("msgbatch_1")
    with raw_db(where, tmp_path) as db:
        stored = dict(db.execute("SELECT video_id, batch_plan FROM videos").fetchall())
    assert stored == {"aaaaaaaaaaa": None, "bbbbbbbbbbb": '{"b": 3}'}  # a written note keeps no progress


# the server: bad input


def test_wrong_credentials_are_one_line_without_the_password(postgres_server, tmp_path: Path) -> None:
    url = postgres_server.url(password="not-the-Pa55word")
    with pytest.raises(ArchiveError) as caught:
        Archive.open(tmp_path, url)
    message = str(caught.value)
    assert message.startswith(f"postgresql://studybuddy:***@127.0.0.1:{postgres_server.port}/postgres: ")
    assert "cannot connect to PostgreSQL" in message and "password authentication failed" in message
    assert "not-the-Pa55word" not in message and "\n" not in message


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://someone:hunter2@127.0.0.1:{port}/notes"
    with pytest.raises(ArchiveError) as caught:
        Archive.open(tmp_path, url)
    message = str(caught.value)
    assert message.startswith(
        f"postgresql://someone:***@127.0.0.1:{port}/notes: cannot connect to PostgreSQL"
    )
    assert "hunter2" not in message and "\n" not in message


@pytest.mark.parametrize("url", ["mysql://root:pw@127.0.0.1/notes", "notes.sqlite3"])
def test_an_unknown_scheme_is_refused_naming_it(tmp_path: Path, url: str) -> None:
    with pytest.raises(ArchiveError, match="unknown archive scheme") as caught:
        Archive.open(tmp_path, url)
    assert "pw@" not in str(caught.value)


def test_connections_the_server_dropped_are_replaced(
    archive: Archive, tmp_path: Path, where: str | None
) -> None:
    if where is None:
        pytest.skip("a file has no connection to lose")
    archive.start("vid00000001")
    with raw_db(where, tmp_path) as db:  # the server ends every other connection of this database
        db.execute(  # and waits (up to 5 s) until each backend is gone, so its socket is closed
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    row = archive.get("vid00000001")
    assert row is not None and row.status is Status.RUNNING
    archive.start("vid00000001")


# the shared queue


def test_enqueue_adds_new_videos_only_and_take_claims_the_oldest(archive: Archive) -> None:
    record_done(archive, "done0000001")
    assert archive.enqueue(["vid00000001", "vid00000002", "done0000001", "vid00000001"]) == 2
    assert archive.get("done0000001").status is Status.DONE  # type: ignore[union-attr]
    assert archive.get("vid00000001").status is Status.QUEUED  # type: ignore[union-attr]
    assert archive.unfinished() == 2
    assert archive.take("me", ttl_s=60, limit=1, now=1_000.0) == ["vid00000001"]
    assert archive.take("other", ttl_s=60, limit=5, now=1_000.0) == ["vid00000002"]
    assert archive.take("third", ttl_s=60, limit=5, now=1_059.0) == []  # both held
    assert archive.take("third", ttl_s=60, limit=5, now=1_061.0) == ["vid00000001", "vid00000002"]
    assert archive.release_all("third") == 2
    assert archive.get("vid00000001").claimed_by is None  # type: ignore[union-attr]


def test_a_video_recorded_done_holds_no_claim(archive: Archive) -> None:
    """A worker killed after it recorded a video done, before it released the claim, leaves no claim."""
    assert archive.enqueue(["vid00000001"]) == 1
    assert archive.take("killed-run", ttl_s=60, limit=1, now=1_000.0) == ["vid00000001"]
    archive.record_done("vid00000001", title="Lecture", note_path=None, transcript_path=None)
    row = archive.get("vid00000001")
    assert row is not None and (row.status, row.claimed_by) == (Status.DONE, None)
    assert archive.release_all("killed-run") == 0


def test_take_finds_failures_when_their_retry_is_due(archive: Archive) -> None:
    archive.record_failed(
        "vid00000001", ErrorKind.BLOCKED, "blocked", retry_delay=lambda _failures: 300.0, now=1_000.0
    )
    archive.record_failed("vid00000002", ErrorKind.PERMANENT, "disabled", now=1_000.0)  # asked for only
    assert archive.take("me", ttl_s=60, limit=5, now=1_200.0) == []
    assert archive.take("me", ttl_s=60, limit=5, now=1_301.0) == ["vid00000001"]
    assert archive.unfinished() == 0  # a scheduled retry does not keep `work` waiting


def test_take_claims_expired_claims_first_then_due_retries_then_the_oldest_queued(archive: Archive) -> None:
    archive.enqueue(["vid0000000a", "vid0000000b", "vid0000000c", "vid0000000d"])
    assert archive.take("dead", ttl_s=60, limit=1, now=1_000.0) == ["vid0000000a"]  # expires at 1060
    assert archive.take("dead", ttl_s=60, limit=1, now=1_010.0) == ["vid0000000b"]  # ... at 1070
    archive.record_failed(
        "vid0000000f", ErrorKind.BLOCKED, "blocked", retry_delay=lambda _: 300.0, now=1_000.0
    )
    assert archive.take("live", ttl_s=600, limit=1, now=1_301.0) == ["vid0000000a"]
    assert archive.take("live", ttl_s=600, limit=2, now=1_301.0) == ["vid0000000b", "vid0000000f"]
    assert archive.take("live", ttl_s=600, limit=5, now=1_301.0) == ["vid0000000c", "vid0000000d"]
    assert archive.take("other", ttl_s=600, limit=5, now=1_302.0) == []  # all held by "live"
    assert archive.release_all("live") == 5


def _take_all(where: str | None, root: str, owner: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    with Archive.open(Path(root), where) as archive:
        barrier.wait(timeout=30)
        while taken := archive.take(owner, ttl_s=600, limit=3):
            for video_id in taken:
                archive.start(video_id)
                archive.record_done(video_id, note_path=Path(root) / f"{owner}-{video_id}.md")
                archive.release(video_id, owner)


def test_four_processes_taking_from_one_queue_never_take_a_video_twice(
    archive: Archive, tmp_path: Path, where: str | None
) -> None:
    queued = [f"vid{i:08d}" for i in range(200)]
    archive.enqueue(queued)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    owners = [f"machine{number}" for number in range(4)]
    processes = [
        context.Process(target=_take_all, args=(where, str(tmp_path), owner, barrier)) for owner in owners
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    rows = archive.get_many(queued)
    assert all(row.status is Status.DONE and row.attempts == 1 for row in rows.values())
    assert len(rows) == 200
    assert archive.unfinished() == 0


def _count_served(where: str | None, root: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    with Archive.open(Path(root), where) as archive:
        barrier.wait(timeout=30)
        for _ in range(50):
            archive.update_exit_record(
                "F" * 40, lambda record: dataclasses.replace(record, served=record.served + 1)
            )


def test_machines_sharing_an_archive_update_one_exit_record_without_losing_a_count(
    archive: Archive, tmp_path: Path, where: str | None
) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    processes = [
        context.Process(target=_count_served, args=(where, str(tmp_path), barrier)) for _ in range(3)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0, 0]
    (record,) = archive.exit_records()
    assert record.served == 150
