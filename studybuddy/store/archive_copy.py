"""`archive migrate --to URL`: copy an archive (the SQLite file of an output folder) into another (a
PostgreSQL database), every table and column, so machines can share what one machine has done.

The target must hold no videos, exit events, reputation or batches yet: a copy never merges two archives,
so running it twice cannot double anything. Everything is copied in one transaction of the target.
"""

from __future__ import annotations

from studybuddy.errors import ArchiveError
from studybuddy.store.archive import Archive

TABLES = ("videos", "exit_events", "exit_reputation", "batches")


def copy_archive(source: Archive, target: Archive) -> dict[str, int]:
    """Copy every row of `source` into the empty `target`; returns the rows copied, by table."""
    copied: dict[str, int] = {}
    with source.backend.reading(snapshot=True) as reading, target.backend.writing() as writing:
        for table in TABLES:
            (present,) = writing.execute(f"SELECT COUNT(*) FROM {table}").fetchone()  # noqa: S608
            if present:
                raise ArchiveError(
                    f"{target.where}: already holds {table} ({present} rows); archive migrate copies only "
                    "into an empty archive"
                )
        for table in TABLES:
            cursor = reading.execute(f"SELECT * FROM {table}")  # noqa: S608 - constant table names
            columns = [column[0] for column in cursor.description]
            rows = [tuple(row) for row in cursor.fetchall()]
            insert = (
                f"INSERT INTO {table} ({', '.join(columns)})"  # noqa: S608 - names from the schema
                f" VALUES ({', '.join('?' * len(columns))})"
            )
            writing.executemany(insert, rows)
            copied[table] = len(rows)
    return copied
