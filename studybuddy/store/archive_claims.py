"""The archive's claims and shared work queue (a mixin of `Archive`): a claim on a video keeps runs and
machines sharing the archive from processing it twice; `enqueue` and `take` are the queue `work` runs on."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from studybuddy.store.archive_rows import COLUMNS, Claim, RowCodec, iso_time, now_iso
from studybuddy.store.archive_sql import Backend

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM videos"  # noqa: S608 - column names are constants
# What `take` claims, in this order: videos whose claim expired (a machine died), failures due for a retry,
# then queued ones, oldest first. Each part reads a partial index of its own (migration m011) holding only
# the videos it looks for, so no part walks past the videos other machines hold: claimed videos are only in
# the index by claim expiry, where a range finds the expired ones. The outer LIMIT stops at `:limit` videos,
# so a later part runs only when the earlier ones found too few. `{lock}` is the dialect's row locking.
_TAKE = """
UPDATE videos SET claimed_by = :owner, claim_expires_at = :expires WHERE video_id IN (
    SELECT video_id FROM (
        SELECT video_id FROM videos
        WHERE status IN ('queued', 'running', 'failed') AND claimed_by IS NOT NULL
            AND claim_expires_at <= :now AND (status <> 'failed' OR next_retry_at <= :now)
        ORDER BY claim_expires_at LIMIT :limit{lock}
    ) AS expired
    UNION ALL SELECT video_id FROM (
        SELECT video_id FROM videos
        WHERE status = 'failed' AND claimed_by IS NULL AND next_retry_at <= :now
        ORDER BY next_retry_at LIMIT :limit{lock}
    ) AS retries
    UNION ALL SELECT video_id FROM (
        SELECT video_id FROM videos
        WHERE status IN ('queued', 'running') AND claimed_by IS NULL
        ORDER BY first_seen_at, video_id LIMIT :limit{lock}
    ) AS queued
    LIMIT :limit
) RETURNING video_id
"""


class QueueRecords:
    """Claims and the queue, on the backend and row codec of the `Archive` that inherits this."""

    _backend: Backend
    _codec: RowCodec

    def claim(
        self,
        video_id: str,
        owner: str,
        *,
        ttl_s: float,
        now: float | None = None,
        is_gone: Callable[[str], bool] = lambda _holder: False,
    ) -> Claim:
        """Claim the video for `owner` until `now + ttl_s`, unless another owner holds an unexpired claim
        (a holder `is_gone` says has died loses its claim at once).

        One transaction holding the video's row (SQLite: the whole file), so two processes can never both get
        it. A video the archive has
        never seen gets a `running` row. The claim carries the row as it was, to decide afresh on it.
        """
        at = time.time() if now is None else now
        with self._backend.writing() as db:
            db.lock_key(f"video {video_id}")
            found = db.execute(f"{_SELECT} WHERE video_id = ?{db.dialect.for_update}", (video_id,)).fetchone()
            row = None if found is None else self._codec.row(found)
            holder = row.claimed_by if row else None
            held = (
                row is not None
                and holder not in (None, owner)
                and (row.claim_expires_at or "") > iso_time(at)
            )
            if held and holder is not None and not is_gone(holder):
                return Claim(granted=False, row=row, holder=holder)
            db.execute(
                """
                INSERT INTO videos (video_id, status, first_seen_at, updated_at, claimed_by, claim_expires_at)
                VALUES (:video_id, 'running', :now, :now, :owner, :expires)
                ON CONFLICT (video_id) DO UPDATE SET claimed_by = :owner, claim_expires_at = :expires
                """,
                {"video_id": video_id, "now": iso_time(at), "owner": owner, "expires": iso_time(at + ttl_s)},
            )
        return Claim(granted=True, row=row, holder=owner)

    def renew_claims(self, owner: str, *, ttl_s: float, now: float | None = None) -> int:
        """Push back the expiry of every claim `owner` holds (videos long in progress); returns how many."""
        at = time.time() if now is None else now
        with self._backend.writing(one_statement=True) as db:
            cursor = db.execute(
                "UPDATE videos SET claim_expires_at = ? WHERE claimed_by = ?", (iso_time(at + ttl_s), owner)
            )
            return cursor.rowcount

    def release(self, video_id: str, owner: str) -> None:
        """Drop `owner`'s claim on the video (a claim another run has taken over meanwhile stays)."""
        with self._backend.writing(one_statement=True) as db:
            db.execute(
                "UPDATE videos SET claimed_by = NULL, claim_expires_at = NULL"
                " WHERE video_id = :video_id AND claimed_by = :owner",
                {"video_id": video_id, "owner": owner},
            )

    def release_all(self, owner: str) -> int:
        """Drop every claim `owner` holds (a worker that stops hands back what it took); returns how many."""
        with self._backend.writing(one_statement=True) as db:
            return db.execute(
                "UPDATE videos SET claimed_by = NULL, claim_expires_at = NULL WHERE claimed_by = ?", (owner,)
            ).rowcount

    def enqueue(self, video_ids: Sequence[str]) -> int:
        """Add videos to the shared queue as `queued`; a video the archive holds keeps its row (done stays
        done). One transaction; returns how many were added."""
        now = now_iso()
        with self._backend.writing() as db:
            return db.executemany(
                "INSERT INTO videos (video_id, status, first_seen_at, updated_at)"
                " VALUES (?, 'queued', ?, ?) ON CONFLICT (video_id) DO NOTHING",
                [(video_id, now, now) for video_id in dict.fromkeys(video_ids)],
            )

    def take(self, owner: str, *, ttl_s: float, limit: int, now: float | None = None) -> list[str]:
        """Claim for `owner` until `now + ttl_s` up to `limit` videos the queue holds: first those whose claim
        expired (a machine died), then failures due for a retry, then queued ones, oldest first.

        One statement, so on PostgreSQL one round trip; its rows are picked with `FOR UPDATE SKIP LOCKED`,
        so machines taking at once get different videos without waiting for each other (a row another
        machine claimed meanwhile is checked again once its claim is committed, and left). SQLite's write
        transaction holds the file.
        """
        at = time.time() if now is None else now
        with self._backend.writing(one_statement=True) as db:
            found = db.execute(
                _TAKE.format(lock=db.dialect.skip_locked),
                {"owner": owner, "expires": iso_time(at + ttl_s), "now": iso_time(at), "limit": limit},
            ).fetchall()
        return sorted(str(video_id) for (video_id,) in found)

    def unfinished(self) -> int:
        """How many videos are queued or in progress anywhere (a `work` run without `--follow` waits for
        them: a machine that dies leaves its videos to the others once their claims expire)."""
        with self._backend.reading() as db:
            (count,) = db.execute(
                "SELECT COUNT(*) FROM videos WHERE status IN ('queued', 'running')"
            ).fetchone()
        return int(count)
