"""The archive's schema changes, numbered and applied in order by `Archive.open`, on either engine.

A migration is never renamed once released: a change is a new function appended to `MIGRATIONS`. They
use plain values, not the current enums, so an old migration means the same thing forever. Their SQL is
written once for both engines (see `archive_sql`); where the engines differ (a CHECK constraint SQLite
cannot alter), the migration says so.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime

from studybuddy.errors import ArchiveError
from studybuddy.store.archive_sql import SQLITE, Backend, Db

log = logging.getLogger(__name__)


def m001_initial(db: Db) -> None:
    db.execute(
        """
        CREATE TABLE videos (
            video_id TEXT PRIMARY KEY,
            status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
            error_kind TEXT,
            error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            title TEXT,
            channel TEXT,
            note_path TEXT,
            transcript_path TEXT,
            exit_fingerprint TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cache_read_tokens INTEGER,
            cache_write_tokens INTEGER,
            model TEXT,
            first_seen_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            elapsed_s REAL,
            updated_at TEXT NOT NULL
        )
        """
    )


def m002_lookup_indexes(db: Db) -> None:
    """`archive list --status/--kind` and lookups by note path without a table scan."""
    db.execute("CREATE INDEX videos_by_status ON videos (status, error_kind)")
    db.execute("CREATE INDEX videos_by_note_path ON videos (note_path)")


def m003_exit_events(db: Db) -> None:
    """Uses and blocks per Tor exit, so budgets and cool-downs hold across runs and `tor status` sees them."""
    db.execute(
        """
        CREATE TABLE exit_events (
            fingerprint TEXT NOT NULL,
            event TEXT NOT NULL CHECK (event IN ('use', 'block')),
            at REAL NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX exit_events_by_time ON exit_events (at)")


def m004_batches(db: Db) -> None:
    """Message Batches of notes (`--batch`): a restarted run polls the same batch, never resubmits."""
    db.execute(
        """
        CREATE TABLE batches (
            batch_id TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('open', 'collected')),
            videos INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    db.execute("ALTER TABLE videos ADD COLUMN batch_id TEXT")
    db.execute("ALTER TABLE videos ADD COLUMN batch_state TEXT")
    db.execute("CREATE INDEX videos_by_batch ON videos (batch_id)")


def m005_subject(db: Db) -> None:
    """The subject (sub-folder) of each note, given with `--subject` or chosen by `--auto-subject`."""
    db.execute("ALTER TABLE videos ADD COLUMN subject TEXT")


def m006_claims_and_retries(db: Db) -> None:
    """Per-video claims across processes, the retry schedule of failures and the `gave_up` status."""
    _allow_status(db, "running", "done", "failed", "gave_up")
    for column in ("claimed_by TEXT", "claim_expires_at TEXT", "next_retry_at TEXT"):
        db.execute(f"ALTER TABLE videos ADD COLUMN {column}")
    db.execute("ALTER TABLE videos ADD COLUMN failures INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE INDEX videos_by_retry ON videos (status, next_retry_at)")


def m007_prompt_version(db: Db) -> None:
    """The prompt version that wrote each note, so notes from older prompts can be regenerated."""
    db.execute("ALTER TABLE videos ADD COLUMN prompt_version TEXT")


def m008_exit_reputation(db: Db) -> None:
    """Each exit's reputation (served, blocked, unreachable, last outcome, pace), seeded from the uses and
    blocks that `exit_events` already holds, so an older archive keeps what it had learned."""
    db.execute(
        """
        CREATE TABLE exit_reputation (
            key TEXT PRIMARY KEY,
            served REAL NOT NULL DEFAULT 0,
            blocked REAL NOT NULL DEFAULT 0,
            unreachable REAL NOT NULL DEFAULT 0,
            last_outcome TEXT,
            last_at REAL,
            pace REAL,
            pace_limit REAL,
            streak INTEGER NOT NULL DEFAULT 0,
            blocks_in_row INTEGER NOT NULL DEFAULT 0,
            cooling_until REAL,
            updated_at REAL NOT NULL
        )
        """
    )
    db.execute(
        """
        INSERT INTO exit_reputation (key, served, blocked, last_outcome, last_at, updated_at)
        SELECT fingerprint,
               SUM(CASE WHEN event = 'use' THEN 1 ELSE 0 END),
               SUM(CASE WHEN event = 'block' THEN 1 ELSE 0 END),
               (SELECT CASE latest.event WHEN 'block' THEN 'blocked' ELSE 'served' END
                  FROM exit_events AS latest WHERE latest.fingerprint = e.fingerprint
                  ORDER BY latest.at DESC LIMIT 1),
               MAX(at),
               MAX(at)
          FROM exit_events AS e GROUP BY fingerprint
        """
    )


def m009_batch_plans(db: Db) -> None:
    """The progress of each batched note (its calls and checked answers so far), saved with the batch it
    waits for: a note written over several batches (sections, then overview; repairs) resumes after a stop."""
    db.execute("ALTER TABLE videos ADD COLUMN batch_plan TEXT")


def m010_queue(db: Db) -> None:
    """The shared work queue: `enqueue` adds videos as `queued`, `work` takes them (oldest first)."""
    _allow_status(db, "running", "done", "failed", "gave_up", "queued")
    db.execute(  # what `take` looks through, in its order; done videos stay out
        "CREATE INDEX videos_in_queue ON videos (first_seen_at, video_id)"
        " WHERE status IN ('queued', 'running', 'failed')"
    )


def m011_queue_by_claim(db: Db) -> None:
    """`take` looks for each kind of video it claims in an index that holds only those: expired claims by
    expiry, failures by retry time, queued videos oldest first. The one index of m010 held claimed videos
    too, and every claim walked past all of them (a queue slowed as it was worked through)."""
    db.execute("DROP INDEX videos_in_queue")
    db.execute(
        "CREATE INDEX videos_by_claim_expiry ON videos (claim_expires_at)"
        " WHERE status IN ('queued', 'running', 'failed') AND claimed_by IS NOT NULL"
    )
    db.execute(
        "CREATE INDEX videos_retries_unclaimed ON videos (next_retry_at)"
        " WHERE status = 'failed' AND claimed_by IS NULL"
    )
    db.execute(
        "CREATE INDEX videos_queued_unclaimed ON videos (first_seen_at, video_id)"
        " WHERE status IN ('queued', 'running') AND claimed_by IS NULL"
    )


def _allow_status(db: Db, *statuses: str) -> None:
    """Let `videos.status` take exactly `statuses`. PostgreSQL replaces the constraint; SQLite cannot alter
    a CHECK constraint, so `videos` is rebuilt from its own schema with the new list."""
    allowed = ", ".join(f"'{status}'" for status in statuses)
    if db.dialect is not SQLITE:
        db.execute("ALTER TABLE videos DROP CONSTRAINT videos_status_check")
        db.execute(f"ALTER TABLE videos ADD CONSTRAINT videos_status_check CHECK (status IN ({allowed}))")
        return
    (table_sql,) = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'videos'"
    ).fetchone()
    indexes = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'videos' AND sql IS NOT NULL"
    ).fetchall()
    constraint = re.compile(r"CHECK \(status IN \('running', 'done', 'failed'[^)]*\)\)")
    if not constraint.search(table_sql):
        raise ArchiveError(f"videos table has an unexpected status constraint: {table_sql}")
    rebuilt = constraint.sub(f"CHECK (status IN ({allowed}))", table_sql).replace("videos", "videos_new", 1)
    db.execute(rebuilt)
    db.execute("INSERT INTO videos_new SELECT * FROM videos")
    db.execute("DROP TABLE videos")
    db.execute("ALTER TABLE videos_new RENAME TO videos")
    for (index_sql,) in indexes:
        db.execute(index_sql)


MIGRATIONS: tuple[Callable[[Db], None], ...] = (
    m001_initial,
    m002_lookup_indexes,
    m003_exit_events,
    m004_batches,
    m005_subject,
    m006_claims_and_retries,
    m007_prompt_version,
    m008_exit_reputation,
    m009_batch_plans,
    m010_queue,
    m011_queue_by_claim,
)


def apply_migrations(backend: Backend) -> None:
    """Create the archive's tables, or bring them up to date; refuse an archive of a newer study-buddy.

    One transaction, which on PostgreSQL first takes a lock, so machines opening a new archive at once do
    not both create it.
    """
    known = [migration.__name__ for migration in MIGRATIONS]
    with backend.writing() as db:
        db.lock_key("study-buddy migrations")
        db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        applied = {str(name) for (name,) in db.execute("SELECT name FROM migrations")}
        unknown = sorted(applied - set(known))
        if unknown:
            raise ArchiveError(
                f"{backend.where}: the archive's schema is at {unknown[-1]}, newer than this study-buddy's "
                f"{known[-1]}; upgrade study-buddy"
            )
        for migration in MIGRATIONS:
            if migration.__name__ not in applied:
                log.info("%s: applying migration %s", backend.where, migration.__name__)
                migration(db)
                db.execute(
                    "INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
                    (migration.__name__, datetime.now(UTC).isoformat(timespec="milliseconds")),
                )
