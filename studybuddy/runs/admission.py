"""Which videos a run takes on, when a failed video is tried again, and claims across processes.

`RetrySchedule` is the per-video backoff that `Archive.record_failed` stores as `next_retry_at` (so it
survives restarts): capped exponential in the number of failures in a row, and `gave_up` after
`max_attempts`. `Admission` decides from a video's archive row whether a run processes it, and says why not:
a plain run retries failures at once, `watch` waits for their `next_retry_at`, `archive retry` takes the
kinds it is asked for, given-up videos included. `ClaimKeeper` claims each video in the archive before it
is processed, so two runs on one output folder never process a video twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from studybuddy.errors import RETRIED_ONLY_WHEN_ASKED, ArchiveError, ErrorKind
from studybuddy.owners import owner_is_gone, process_owner
from studybuddy.store.archive import Archive
from studybuddy.store.archive_rows import ArchiveRow, Claim, Status, iso_time

log = logging.getLogger(__name__)

RETRIED_KINDS = frozenset(ErrorKind) - RETRIED_ONLY_WHEN_ASKED
ALREADY_DONE = "already done"


def retry_selection(archive: Archive, kind: str, video_id: str | None = None) -> tuple[list[str], Admission]:
    """What `archive retry` (and the UI's retry buttons) run: the failed and given-up videos of `kind` (`all`:
    every kind but those retried only when asked), or only `video_id`, and the admission that takes them."""
    kinds = RETRIED_KINDS if kind == "all" else frozenset({ErrorKind(kind)})
    failed = [*archive.rows(Status.FAILED), *archive.rows(Status.GAVE_UP)]
    video_ids = [
        row.video_id
        for row in failed
        if row.error_kind in kinds and (video_id is None or row.video_id == video_id)
    ]
    return video_ids, Admission(kinds=kinds, gave_up=True)


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Capped exponential backoff per video: `base_s`, twice that, ... up to `cap_s`; then give up."""

    base_s: float = 300.0
    cap_s: float = 6 * 3600.0
    max_attempts: int = 8

    def delay(self, failures: int) -> float | None:
        """Seconds until the next try after `failures` failures in a row, or None: give up."""
        if failures >= self.max_attempts:
            return None
        exponent = min(max(failures - 1, 0), 62)  # 2**62 s is far past any cap
        return float(min(self.cap_s, self.base_s * 2**exponent))


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the archive holds on a run's videos: those done, which the run skips, only by id and title (a
    rerun of a long list builds no row for them); the rows of the others it holds."""

    done: dict[str, str | None]  # video id -> title
    rows: dict[str, ArchiveRow]


@dataclass(frozen=True, slots=True)
class Admission:
    """Which videos a run processes, judged on their archive rows."""

    force: bool = False  # redo everything: done, permanent and given-up videos too
    kinds: frozenset[ErrorKind] = RETRIED_KINDS  # failures of these kinds are retried
    gave_up: bool = False  # retry given-up videos (of those kinds) too
    due_only: bool = False  # a failure waits for its `next_retry_at` (watch mode)

    def look_up(self, archive: Archive, video_ids: Sequence[str]) -> Lookup:
        """The archive's answer on `video_ids`, set-based: done videos by id (none when forced to redo
        them), then the rows of the rest."""
        done = {} if self.force else archive.done_titles(video_ids)
        return Lookup(done, archive.get_many([vid for vid in video_ids if vid not in done]))

    def skip_reason(self, row: ArchiveRow | None, now: float) -> str | None:
        """None to process the video, else why it is skipped (one line for the user)."""
        if row is None or row.status in (Status.RUNNING, Status.QUEUED) or self.force:
            return None
        if row.status is Status.DONE:
            return ALREADY_DONE
        kind, error = row.error_kind, row.error
        if kind not in self.kinds:
            return f"failed before ({kind}): {error}; use --force to retry"
        if row.status is Status.GAVE_UP and not self.gave_up:
            return (
                f"gave up after {row.failures} failed attempts ({kind}): {error}; "
                f"use `study-buddy archive retry --kind {kind}`"
            )
        if self.due_only and row.next_retry_at and row.next_retry_at > iso_time(now):
            return f"failed ({kind}); next retry at {row.next_retry_at}"
        return None


class ClaimKeeper:
    """A run's claims on videos in the archive: taken before a video is processed, renewed in the background
    while held (a video may take longer than the claim's lifetime), released when it is over.

    Use as a context manager around the processing; it renews every third of `ttl_s`.
    """

    def __init__(self, archive: Archive, *, ttl_s: float, run_id: str) -> None:
        self.archive = archive
        self.ttl_s = ttl_s
        self.owner = process_owner(run_id)
        self._closing = threading.Event()
        self._renewer: threading.Thread | None = None

    def claim(self, video_id: str) -> Claim:
        return self.archive.claim(video_id, self.owner, ttl_s=self.ttl_s, is_gone=owner_is_gone)

    def release(self, video_id: str) -> None:
        self.archive.release(video_id, self.owner)

    def __enter__(self) -> Self:
        self._closing.clear()
        self._renewer = threading.Thread(target=self._renew, name="study-buddy-claims", daemon=True)
        self._renewer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closing.set()
        if self._renewer is not None:
            self._renewer.join()

    def _renew(self) -> None:
        while not self._closing.wait(self.ttl_s / 3):
            try:
                renewed = self.archive.renew_claims(self.owner, ttl_s=self.ttl_s)
            except ArchiveError as exc:  # the next round tries again; claims expire only after ttl_s
                log.warning("cannot renew claims: %s", exc)
            else:
                log.debug("renewed %d claim(s) of %s", renewed, self.owner)
