"""Tests for studybuddy.archive_copy: `study-buddy archive migrate --to URL` copies an output folder's SQLite
archive into PostgreSQL, every row of every table, and refuses a target that holds anything already."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
from click.testing import CliRunner

from studybuddy.cli.main import cli
from studybuddy.errors import ErrorKind
from studybuddy.models import Usage
from studybuddy.store.archive import Archive
from tests.pg_fixtures import PASSWORD

TABLES = ("videos", "exit_events", "exit_reputation", "batches")


def table_rows(fetch: Callable[[str], list[tuple[object, ...]]]) -> dict[str, list[tuple[object, ...]]]:
    return {table: sorted(tuple(row) for row in fetch(f"SELECT * FROM {table}")) for table in TABLES}


def filled_archive(root: Path) -> None:
    with Archive.open(root) as archive:
        archive.start("vid00000001")
        archive.record_done(
            "vid00000001",
            title="Ünïcode ✓",
            note_path=root / "Math" / "A.md",
            usage=Usage(1, 2, 3, 4),
            model="claude-x",
            elapsed_s=1.25,
            prompt_version="p7",
        )
        archive.record_subject("vid00000001", "Math")
        archive.record_failed("vid00000002", ErrorKind.BLOCKED, "blocked", retry_delay=lambda _n: 60.0)
        archive.enqueue(["vid00000003"])
        archive.claim("vid00000003", "host:1:run", ttl_s=60)
        archive.start("vid00000004")
        archive.record_batch("msgbatch_1", "claude-x", {"vid00000004": '{"calls": 1}'})
        archive.record_exit_event("F" * 40, "use", at=1_000.123456)
        archive.record_exit_event("F" * 40, "block", at=1_001.5)
        archive.update_exit_record(
            "F" * 40, lambda record: dataclasses.replace(record, served=3.5, pace=0.25)
        )


def test_migrate_copies_every_row_of_every_table_and_refuses_a_second_copy(
    tmp_path: Path, fresh_database: Callable[[], str]
) -> None:
    filled_archive(tmp_path)
    url = fresh_database()
    result = CliRunner().invoke(cli, ["archive", "migrate", "--output", str(tmp_path), "--to", url])
    assert result.exit_code == 0, result.output
    assert "4 videos, 2 exit_events, 1 exit_reputation, 1 batches" in result.output
    assert PASSWORD not in result.output

    with sqlite3.connect(tmp_path / Archive.FILENAME) as source:
        expected = table_rows(lambda query: source.execute(query).fetchall())
    with psycopg.connect(url) as target:
        copied = table_rows(lambda query: target.execute(query).fetchall())
    assert copied == expected
    assert all(expected[table] for table in TABLES)
    with Archive.open(tmp_path / "elsewhere", url) as archive:  # the copy works as an archive
        row = archive.get("vid00000001")
        assert row is not None and row.note_path == tmp_path / "elsewhere" / "Math" / "A.md"
        assert archive.get("vid00000003").claimed_by == "host:1:run"  # type: ignore[union-attr]
        assert archive.batch_plans("msgbatch_1") == {"vid00000004": '{"calls": 1}'}

    again = CliRunner().invoke(cli, ["archive", "migrate", "--output", str(tmp_path), "--to", url])
    assert again.exit_code == 1
    assert "already holds videos (4 rows); archive migrate copies only into an empty archive" in again.output
    assert PASSWORD not in again.output
    with psycopg.connect(url) as target:
        assert table_rows(lambda query: target.execute(query).fetchall()) == expected  # nothing doubled


def test_migrate_needs_an_archive_and_a_server_url(tmp_path: Path) -> None:
    missing = CliRunner().invoke(cli, ["archive", "migrate", "-o", str(tmp_path), "--to", "postgresql://x/y"])
    assert missing.exit_code == 1 and "no archive here to migrate" in missing.output
    filled_archive(tmp_path)
    wrong = CliRunner().invoke(cli, ["archive", "migrate", "-o", str(tmp_path), "--to", "sqlite:///x.db"])
    assert wrong.exit_code == 1 and "unknown archive scheme 'sqlite'" in wrong.output
