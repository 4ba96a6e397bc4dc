"""The archive: one row per video, so reruns skip what is done and retry what failed; claims on videos, so
runs (and machines) sharing it never process a video twice; the shared work queue; exit reputation.

By default it is the SQLite file `<output root>/.study-buddy.sqlite3`; with `--archive postgresql://...` it
is a PostgreSQL database that several machines share (see `archive_sql` for what differs between them).
Schema changes are numbered migrations (`migrations.py`), applied when the archive is opened; an archive
of a newer study-buddy is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from studybuddy.errors import RETRIED_ONLY_WHEN_ASKED, ArchiveError, ErrorKind
from studybuddy.models import Usage
from studybuddy.store.archive_claims import QueueRecords
from studybuddy.store.archive_rows import (
    COLUMNS,
    ArchiveRow,
    BatchState,
    RowCodec,
    Status,
    iso_time,
    now_iso,
)
from studybuddy.store.archive_sql import Backend, Db, connect
from studybuddy.store.exit_records import RECORD_FIELDS, ExitRecord, from_rows
from studybuddy.store.migrations import apply_migrations
from studybuddy.text import one_line

__all__ = ["Archive"]

_MAX_ERROR_CHARS = 500
EXIT_EVENTS_KEPT_S = 7 * 24 * 3600.0

_SELECT_REPUTATION = f"SELECT {', '.join(RECORD_FIELDS)} FROM exit_reputation"  # noqa: S608 - constants
_STORE_REPUTATION = (  # an upsert: machines sharing an archive update one exit's record in turn
    f"INSERT INTO exit_reputation ({', '.join(RECORD_FIELDS)})"  # noqa: S608 - constants
    f" VALUES ({', '.join(':' + name for name in RECORD_FIELDS)})"
    f" ON CONFLICT (key) DO UPDATE SET {', '.join(f'{name} = excluded.{name}' for name in RECORD_FIELDS)}"
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM videos"  # noqa: S608 - column names are constants


class Archive(QueueRecords):
    """The archive of one output folder. Thread-safe; use as a context manager or call `close()`."""

    FILENAME = ".study-buddy.sqlite3"

    def __init__(self, root: Path, backend: Backend) -> None:
        """Use `Archive.open`: it connects and migrates."""
        self.root = root
        self.where = backend.where
        self._backend = backend
        self._codec = RowCodec(root, backend.where)

    @classmethod
    def open(cls, root: Path, url: str | None = None) -> Archive:
        """Open (or create) the archive of the output folder `root`, applying missing migrations: the SQLite
        file in `root`, or the PostgreSQL database at `url`. Note paths are stored relative to `root`."""
        root = root.expanduser().resolve()
        backend = connect(root, url)
        try:
            apply_migrations(backend)
        except ArchiveError:
            backend.close()
            raise
        return cls(root, backend)

    @property
    def backend(self) -> Backend:
        """Where the archive lives, for tools that work on its tables as a whole (`archive migrate`)."""
        return self._backend

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def get(self, video_id: str) -> ArchiveRow | None:
        with self._reading() as db:
            found = db.execute(f"{_SELECT} WHERE video_id = ?", (video_id,)).fetchone()
        return None if found is None else self._codec.row(found)

    def get_many(self, video_ids: Sequence[str]) -> dict[str, ArchiveRow]:
        """The rows of those `video_ids` that the archive holds, by video id."""
        rows = (self._codec.row(values) for values in self._select_ids(_SELECT, video_ids))
        return {row.video_id: row for row in rows}

    def done_titles(self, video_ids: Sequence[str]) -> dict[str, str | None]:
        """The title of each of `video_ids` that is done (and waits for no Message Batch), by video id.

        What a run skips, found set-based: four values a video as the driver returns them, no row built, so
        a rerun of 100,000 done videos checks them in a fraction of a second. The status is tested here, not
        in SQL: there SQLite would answer it from its status index, reading every done video per query.
        """
        found = self._select_ids("SELECT video_id, title, status, batch_state FROM videos", video_ids)
        return {
            video_id: title
            for video_id, title, status, batch_state in found
            if status == Status.DONE and batch_state != BatchState.PENDING
        }

    def _select_ids(self, select: str, video_ids: Sequence[str]) -> list[Any]:
        """`select` of the rows of `video_ids`, in as few queries as the dialect allows (several in one
        snapshot)."""
        unique_ids = list(dict.fromkeys(video_ids))
        size = self._backend.dialect.ids_per_query
        found: list[Any] = []
        with self._reading(snapshot=len(unique_ids) > size) as db:
            for start in range(0, len(unique_ids), size):
                ids, params = db.dialect.in_ids("video_id", unique_ids[start : start + size])
                found += db.execute(f"{select} WHERE {ids}", params).fetchall()
        return found

    def rows(self, status: Status | None = None, kind: ErrorKind | None = None) -> list[ArchiveRow]:
        """All rows, oldest first, optionally only those with this status and/or error kind."""
        conditions = ["1 = 1"]
        params: list[str] = []
        if status is not None:
            conditions.append("status = ?")
            params.append(status.value)
        if kind is not None:
            conditions.append("error_kind = ?")
            params.append(kind.value)
        query = f"{_SELECT} WHERE {' AND '.join(conditions)} ORDER BY first_seen_at, video_id"
        with self._reading() as db:
            found = db.execute(query, params).fetchall()
        return [self._codec.row(values) for values in found]

    def record_exit_event(self, fingerprint: str, event: str, at: float | None = None) -> None:
        """Remember that exit `fingerprint` was used for a video (`use`) or blocked us (`block`)."""
        when = time.time() if at is None else at
        with self._writing() as db:
            db.execute(
                "INSERT INTO exit_events (fingerprint, event, at) VALUES (?, ?, ?)",
                (fingerprint, event, when),
            )
            db.execute("DELETE FROM exit_events WHERE at < ?", (when - EXIT_EVENTS_KEPT_S,))

    def exit_events(self, since: float) -> list[tuple[str, str, float]]:
        """(fingerprint, event, unix time) of exit uses and blocks since `since`, oldest first."""
        with self._reading() as db:
            found = db.execute(
                "SELECT fingerprint, event, at FROM exit_events WHERE at >= ? ORDER BY at", (since,)
            ).fetchall()
        return [(str(fp), str(event), float(at)) for fp, event, at in found]

    def exit_records(self) -> list[ExitRecord]:
        """Every exit's reputation as stored (counts as of each record's `updated_at`)."""
        with self._reading() as db:
            found = db.execute(_SELECT_REPUTATION).fetchall()
        return from_rows(found)

    def update_exit_record(self, key: str, change: Callable[[ExitRecord], ExitRecord]) -> ExitRecord:
        """Apply `change` to the stored reputation of `key` in one transaction (runs share archives)."""
        with self._writing() as db:
            db.lock_key(f"exit {key}")
            found = db.execute(f"{_SELECT_REPUTATION} WHERE key = ?", (key,)).fetchall()
            record = change(from_rows(found)[0] if found else ExitRecord(key, updated_at=time.time()))
            values = {name: getattr(record, name) for name in RECORD_FIELDS}
            values["last_outcome"] = record.last_outcome.value if record.last_outcome else None
            db.execute(_STORE_REPUTATION, values)
        return record

    def start(self, video_id: str) -> None:
        """Mark the video running: one more attempt, started now, the last error cleared."""
        now = now_iso()
        self._write(
            """
            INSERT INTO videos (video_id, status, attempts, first_seen_at, started_at, updated_at)
            VALUES (:video_id, 'running', 1, :now, :now, :now)
            ON CONFLICT (video_id) DO UPDATE SET
                status = 'running', attempts = videos.attempts + 1, error_kind = NULL, error = NULL,
                started_at = :now, finished_at = NULL, elapsed_s = NULL, updated_at = :now
            """,
            {"video_id": video_id, "now": now},
        )

    def record_done(
        self,
        video_id: str,
        *,
        title: str | None = None,
        channel: str | None = None,
        note_path: Path | None = None,
        transcript_path: Path | None = None,
        usage: Usage | None = None,
        model: str | None = None,
        exit_fingerprint: str | None = None,
        elapsed_s: float = 0.0,
        batch_id: str | None = None,
        prompt_version: str | None = None,
    ) -> None:
        """The note is in place: status done, error and claim cleared, what it cost recorded (and its batch).

        A done video needs no claim: a run killed between this and its release leaves none behind."""
        self._write(
            """
            INSERT INTO videos (
                video_id, status, attempts, title, channel, note_path, transcript_path, exit_fingerprint,
                input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, model,
                first_seen_at, finished_at, elapsed_s, updated_at, batch_id, batch_state, prompt_version
            ) VALUES (
                :video_id, 'done', 1, :title, :channel, :note_path, :transcript_path, :exit_fingerprint,
                :input_tokens, :output_tokens, :cache_read_tokens, :cache_write_tokens, :model,
                :now, :now, :elapsed_s, :now, :batch_id, :batch_state, :prompt_version
            )
            ON CONFLICT (video_id) DO UPDATE SET
                status = 'done', error_kind = NULL, error = NULL,
                title = COALESCE(:title, videos.title), channel = COALESCE(:channel, videos.channel),
                note_path = :note_path, transcript_path = :transcript_path,
                exit_fingerprint = :exit_fingerprint,
                input_tokens = :input_tokens, output_tokens = :output_tokens,
                cache_read_tokens = :cache_read_tokens, cache_write_tokens = :cache_write_tokens,
                model = :model, finished_at = :now, elapsed_s = :elapsed_s, updated_at = :now,
                batch_id = :batch_id, batch_state = :batch_state, failures = 0, next_retry_at = NULL,
                prompt_version = :prompt_version, claimed_by = NULL, claim_expires_at = NULL
            """,
            {
                "video_id": video_id,
                "title": title,
                "channel": channel,
                "note_path": None if note_path is None else self._codec.stored_path(note_path),
                "transcript_path": None
                if transcript_path is None
                else self._codec.stored_path(transcript_path),
                "exit_fingerprint": exit_fingerprint,
                "input_tokens": None if usage is None else usage.input_tokens,
                "output_tokens": None if usage is None else usage.output_tokens,
                "cache_read_tokens": None if usage is None else usage.cache_read_tokens,
                "cache_write_tokens": None if usage is None else usage.cache_write_tokens,
                "model": model,
                "elapsed_s": elapsed_s,
                "now": now_iso(),
                "batch_id": batch_id,
                "batch_state": None if batch_id is None else BatchState.WRITTEN.value,
                "prompt_version": prompt_version,
            },
        )

    def record_subject(self, video_id: str, subject: str | None) -> None:
        """Remember the subject (sub-folder) of the video's note."""
        self._write(
            "UPDATE videos SET subject = :subject WHERE video_id = :video_id",
            {"video_id": video_id, "subject": subject},
        )

    def record_failed(
        self,
        video_id: str,
        kind: ErrorKind,
        error: str,
        *,
        title: str | None = None,
        exit_fingerprint: str | None = None,
        elapsed_s: float | None = None,
        retry_delay: Callable[[int], float | None] | None = None,
        now: float | None = None,
    ) -> Status:
        """The attempt failed: its kind and a one-line error; a previous note path stays. Returns the status.

        `retry_delay(failures)` schedules the next automatic retry: seconds from `now`, or None to give up
        (status `gave_up`). Without it, or for a kind retried only when asked (permanent, error), nothing is
        scheduled.
        """
        at = time.time() if now is None else now
        automatic = retry_delay is not None and kind not in RETRIED_ONLY_WHEN_ASKED
        with self._writing() as db:
            db.lock_key(f"video {video_id}")
            found = db.execute(
                f"SELECT failures FROM videos WHERE video_id = ?{db.dialect.for_update}",  # noqa: S608 - constants
                (video_id,),
            ).fetchone()
            failures = (0 if found is None else int(found[0])) + 1
            delay = retry_delay(failures) if automatic and retry_delay is not None else None
            gave_up = automatic and delay is None
            status = Status.GAVE_UP if gave_up else Status.FAILED
            db.execute(
                """
                INSERT INTO videos (
                    video_id, status, error_kind, error, attempts, failures, next_retry_at, title,
                    exit_fingerprint, first_seen_at, finished_at, elapsed_s, updated_at
                ) VALUES (
                    :video_id, :status, :kind, :error, 1, :failures, :next_retry_at, :title,
                    :exit_fingerprint, :now, :now, :elapsed_s, :now
                )
                ON CONFLICT (video_id) DO UPDATE SET
                    status = :status, error_kind = :kind, error = :error, failures = :failures,
                    next_retry_at = :next_retry_at, title = COALESCE(:title, videos.title),
                    exit_fingerprint = :exit_fingerprint, finished_at = :now, elapsed_s = :elapsed_s,
                    updated_at = :now, batch_state = NULL
                """,
                {
                    "video_id": video_id,
                    "status": status.value,
                    "kind": kind.value,
                    "error": one_line(error, limit=_MAX_ERROR_CHARS),
                    "failures": failures,
                    "next_retry_at": None if delay is None else iso_time(at + delay),
                    "title": title,
                    "exit_fingerprint": exit_fingerprint,
                    "elapsed_s": elapsed_s,
                    "now": iso_time(at),
                },
            )
        return status

    def record_batch(self, batch_id: str, model: str, plans: Mapping[str, str]) -> None:
        """A Message Batch was created for these videos: remember it and mark them pending in it, each with
        its note's progress (`plans`: video id -> JSON) as it was when the batch was sent. One transaction."""
        now = now_iso()
        with self._writing() as db:
            db.execute(
                "INSERT INTO batches (batch_id, model, state, videos, created_at, updated_at)"
                " VALUES (?, ?, 'open', ?, ?, ?)",
                (batch_id, model, len(plans), now, now),
            )
            db.executemany(
                "UPDATE videos SET batch_id = ?, batch_state = ?, batch_plan = ?, updated_at = ?"
                " WHERE video_id = ?",
                [
                    (batch_id, BatchState.PENDING.value, plan, now, video_id)
                    for video_id, plan in plans.items()
                ],
            )

    def batch_plans(self, batch_id: str) -> dict[str, str]:
        """The note progress (JSON) saved with each video still pending in this batch, by video id."""
        with self._reading() as db:
            found = db.execute(
                "SELECT video_id, batch_plan FROM videos WHERE batch_id = ? AND batch_state = ?"
                " AND batch_plan IS NOT NULL",
                (batch_id, BatchState.PENDING.value),
            ).fetchall()
        return {str(video_id): str(plan) for video_id, plan in found}

    def open_batches(self) -> list[tuple[str, str]]:
        """(batch id, model) of the batches whose results were not collected yet, oldest first."""
        with self._reading() as db:
            found = db.execute(
                "SELECT batch_id, model FROM batches WHERE state = 'open' ORDER BY created_at"
            ).fetchall()
        return [(str(batch_id), str(model)) for batch_id, model in found]

    def pending_in_batch(self, batch_id: str) -> dict[str, ArchiveRow]:
        """The videos still waiting for this batch's results, by video id."""
        with self._reading() as db:
            found = db.execute(
                f"{_SELECT} WHERE batch_id = ? AND batch_state = ?", (batch_id, BatchState.PENDING.value)
            ).fetchall()
        rows = (self._codec.row(values) for values in found)
        return {row.video_id: row for row in rows}

    def close_batch(self, batch_id: str) -> None:
        """Every result of the batch was handled: it is not polled again (the progress saved with its
        videos is dropped, unless a video waits for it still)."""
        with self._writing() as db:
            db.execute(
                "UPDATE batches SET state = 'collected', updated_at = ? WHERE batch_id = ?",
                (now_iso(), batch_id),
            )
            db.execute(
                "UPDATE videos SET batch_plan = NULL WHERE batch_id = ?"
                " AND (batch_state IS NULL OR batch_state <> ?)",
                (batch_id, BatchState.PENDING.value),
            )

    def _reading(self, *, snapshot: bool = False) -> AbstractContextManager[Db]:
        return self._backend.reading(snapshot=snapshot)

    def _writing(self) -> AbstractContextManager[Db]:
        return self._backend.writing()

    def _write(self, statement: str, params: dict[str, object]) -> None:
        with self._backend.writing(one_statement=True) as db:
            db.execute(statement, params)
