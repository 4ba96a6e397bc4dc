"""Tests for studybuddy.migrations: an archive of any older version opens with every migration applied and
nothing lost; an archive written by a newer version is refused, naming what it does not know."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from studybuddy.errors import ArchiveError
from studybuddy.store.archive import Archive
from studybuddy.store.archive_rows import Status
from studybuddy.store.archive_sql import POSTGRES, SQLITE, Db
from studybuddy.store.migrations import MIGRATIONS

RELEASED = [  # never renamed, reordered or left out: archives out there record these names
    "m001_initial",
    "m002_lookup_indexes",
    "m003_exit_events",
    "m004_batches",
    "m005_subject",
    "m006_claims_and_retries",
    "m007_prompt_version",
    "m008_exit_reputation",
    "m009_batch_plans",
    "m010_queue",
    "m011_queue_by_claim",
]
NAMES = [migration.__name__ for migration in MIGRATIONS]
T0 = "2025-01-01T00:00:00.000+00:00"
VALID = {"status": "done", "event": "use", "state": "open", "error_kind": "transient"}  # values it allows


def raw(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / Archive.FILENAME)


def applied(db: sqlite3.Connection) -> list[str]:
    return [name for (name,) in db.execute("SELECT name FROM migrations ORDER BY name")]


def archive_at(root: Path, version: int) -> sqlite3.Connection:
    """An archive as a release with the first `version` migrations left it."""
    db = raw(root)
    db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for migration in MIGRATIONS[:version]:
        migration(Db(db, SQLITE))
        db.execute("INSERT INTO migrations VALUES (?, ?)", (migration.__name__, T0))
    db.commit()
    return db


def fill_every_table(db: sqlite3.Connection) -> dict[str, dict[str, object]]:
    """One row in every table, a value in every column; returns what was written, by table."""
    tables = [
        name
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if name != "migrations" and not name.startswith("sqlite_")
    ]
    written: dict[str, dict[str, object]] = {}
    for table in tables:
        row: dict[str, object] = {}
        for _cid, column, kind, _notnull, _default, _pk in db.execute(f"PRAGMA table_info({table})"):
            if column in VALID:
                row[column] = VALID[column]
            elif "INT" in kind.upper():
                row[column] = 7
            elif "REAL" in kind.upper():
                row[column] = 1.5
            else:
                row[column] = "vid00000001" if column == "video_id" else f"{column} of {table}"
        columns = ", ".join(row)
        db.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values())
        )
        written[table] = row
    db.commit()
    return written


def test_the_released_migrations_stay_as_they_were() -> None:
    assert NAMES[: len(RELEASED)] == RELEASED
    assert len(set(NAMES)) == len(NAMES) and NAMES == sorted(NAMES)  # numbered in the order they apply


def test_open_creates_the_file_in_wal_mode_with_all_migrations(tmp_path: Path) -> None:
    Archive.open(tmp_path / "out").close()
    db = raw(tmp_path / "out")
    assert applied(db) == NAMES
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


def test_opening_twice_applies_nothing_again(tmp_path: Path) -> None:
    Archive.open(tmp_path).close()
    db = raw(tmp_path)
    before = db.execute("SELECT name, applied_at FROM migrations ORDER BY name").fetchall()
    with Archive.open(tmp_path) as archive:
        archive.start("vid00000001")
    with Archive.open(tmp_path) as archive:
        assert archive.get("vid00000001") is not None
    assert db.execute("SELECT name, applied_at FROM migrations ORDER BY name").fetchall() == before
    db.close()


@pytest.mark.parametrize("version", range(1, len(MIGRATIONS)), ids=NAMES[:-1])
def test_an_archive_of_every_older_version_migrates_forward_with_nothing_lost(
    tmp_path: Path, version: int
) -> None:
    db = archive_at(tmp_path, version)
    written = fill_every_table(db)
    db.close()

    with Archive.open(tmp_path) as archive:
        row = archive.get("vid00000001")
    assert row is not None and row.status is Status.DONE

    db = raw(tmp_path)
    assert applied(db) == NAMES
    for table, values in written.items():
        stored = db.execute(f"SELECT {', '.join(values)} FROM {table}").fetchall()
        assert stored == [tuple(values.values())], table
    db.close()


def test_old_archive_is_upgraded_and_keeps_its_rows_and_indexes(tmp_path: Path) -> None:
    db = archive_at(tmp_path, 1)
    db.execute(
        "INSERT INTO videos (video_id, status, attempts, note_path, first_seen_at, updated_at) "
        "VALUES ('vid00000001', 'done', 2, 'Old.md', ?, ?)",
        (T0, T0),
    )
    db.commit()
    with Archive.open(tmp_path) as archive:
        row = archive.get("vid00000001")
    assert row is not None
    assert (row.status, row.attempts, row.note_path) == (Status.DONE, 2, tmp_path / "Old.md")
    indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"videos_by_status", "videos_by_note_path", "videos_by_retry"} <= indexes
    db.close()


def test_an_archive_from_a_newer_version_is_refused_naming_the_unknown_migration(tmp_path: Path) -> None:
    db = archive_at(tmp_path, 3)  # a newer release that also left out some migrations this one has
    db.execute("INSERT INTO migrations VALUES ('m099_future', ?)", (T0,))
    db.commit()
    with pytest.raises(ArchiveError) as caught:
        Archive.open(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / Archive.FILENAME}: ")
    assert "newer" in message and "m099_future" in message
    assert "\n" not in message
    assert applied(db) == [*NAMES[:3], "m099_future"]  # refused before applying anything
    db.close()


def test_an_older_archive_keeps_what_it_knew_of_exits_as_their_reputation(tmp_path: Path) -> None:
    db = archive_at(tmp_path, NAMES.index("m008_exit_reputation"))  # the release before reputation
    good, bad = "A" * 40, "B" * 40
    rows = [(good, "use", 10.0), (good, "block", 20.0), (good, "use", 30.0), (bad, "block", 40.0)]
    db.executemany("INSERT INTO exit_events (fingerprint, event, at) VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()
    with Archive.open(tmp_path) as archive:
        records = {record.key: record for record in archive.exit_records()}
        assert archive.exit_events(since=0) == rows  # nothing dropped
    assert (records[good].served, records[good].blocked, records[good].last_outcome) == (2, 1, "served")
    assert (records[bad].served, records[bad].blocked, records[bad].last_outcome) == (0, 1, "blocked")
    assert records[bad].updated_at == 40.0


# the same migrations on PostgreSQL


def server_archive_at(url: str, version: int) -> None:
    """A database as a release with the first `version` migrations left it."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        db = Db(connection, POSTGRES)
        db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        for migration in MIGRATIONS[:version]:
            migration(db)
            db.execute("INSERT INTO migrations VALUES (?, ?)", (migration.__name__, T0))
        db.execute(
            "INSERT INTO videos (video_id, status, first_seen_at, updated_at)"
            " VALUES ('vid00000001', 'done', ?, ?)",
            (T0, T0),
        )
        if version >= 3:
            db.execute(
                "INSERT INTO exit_events VALUES (?, 'use', 1.5), (?, 'block', 2.5)", ("F" * 40, "F" * 40)
            )


def server_applied(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as connection:
        return [name for (name,) in connection.execute("SELECT name FROM migrations ORDER BY name")]


@pytest.mark.parametrize("version", [1, 5, 7, len(MIGRATIONS) - 1], ids=lambda v: NAMES[v - 1])
def test_a_server_archive_of_an_older_version_migrates_forward(
    tmp_path: Path, fresh_database: Callable[[], str], version: int
) -> None:
    url = fresh_database()
    server_archive_at(url, version)
    with Archive.open(tmp_path, url) as archive:
        row = archive.get("vid00000001")
        assert row is not None and row.status is Status.DONE
        archive.enqueue(["vid00000002"])  # the newest status is allowed
        assert archive.take("me", ttl_s=60, limit=5) == ["vid00000002"]
        records = archive.exit_records()
    assert server_applied(url) == NAMES
    if 3 <= version < 8:  # m008 seeded each exit's reputation from its events
        assert [(r.key, r.served, r.blocked, r.last_at) for r in records] == [("F" * 40, 1, 1, 2.5)]


def test_a_server_archive_of_a_newer_version_is_refused_naming_both_versions(
    tmp_path: Path, fresh_database: Callable[[], str]
) -> None:
    url = fresh_database()
    server_archive_at(url, 3)
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("INSERT INTO migrations VALUES ('m099_future', 'x')")
    with pytest.raises(ArchiveError) as caught:
        Archive.open(tmp_path, url)
    message = str(caught.value)
    assert "at m099_future, newer than this study-buddy's " + NAMES[-1] in message
    assert "pg-s3cret" not in message and "\n" not in message
    assert server_applied(url) == [*NAMES[:3], "m099_future"]
