"""What the archive answers: a video's row, a claim, and the archive's timestamps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from studybuddy.errors import ArchiveError, ErrorKind


class Status(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    GAVE_UP = "gave_up"  # failed `max_attempts` times in a row: retried only when asked
    QUEUED = "queued"  # added by `enqueue`: waiting for a `work` run to take it


class BatchState(StrEnum):
    """Where a video is in its Message Batch (`--batch`)."""

    PENDING = "pending"  # submitted: its note comes with the batch's results
    WRITTEN = "written"  # its note was written from the batch's result


@dataclass(frozen=True, slots=True)
class ArchiveRow:
    """One video as the archive knows it. Paths are absolute; timestamps are ISO-8601 UTC strings."""

    video_id: str
    status: Status
    error_kind: ErrorKind | None
    error: str | None
    attempts: int
    title: str | None
    channel: str | None
    note_path: Path | None
    transcript_path: Path | None
    exit_fingerprint: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    model: str | None
    first_seen_at: str
    started_at: str | None
    finished_at: str | None
    elapsed_s: float | None
    updated_at: str
    batch_id: str | None = field(default=None, kw_only=True)  # the Message Batch of this video's note
    batch_state: str | None = field(default=None, kw_only=True)  # BatchState of the video in that batch
    failures: int = field(default=0, kw_only=True)  # failed attempts since the last success
    next_retry_at: str | None = field(default=None, kw_only=True)  # when watch retries a failure
    claimed_by: str | None = field(default=None, kw_only=True)  # "host:pid:run" of the run processing it
    claim_expires_at: str | None = field(default=None, kw_only=True)
    subject: str | None = None  # the sub-folder (subject) the note is in, chosen or given
    prompt_version: str | None = None  # the prompts that wrote the note (for `notes regenerate`)

    def to_json(self) -> dict[str, object]:
        """The row as JSON-ready values (paths as strings, enums as their values)."""
        data: dict[str, object] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            data[name] = str(value) if isinstance(value, (Path, StrEnum)) else value
        return data


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to `Archive.claim`: granted or not, who holds the video, and its row before the claim."""

    granted: bool
    row: ArchiveRow | None
    holder: str | None


COLUMNS = tuple(ArchiveRow.__dataclass_fields__)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def iso_time(at: float) -> str:
    """A Unix time in the archive's timestamp form (ISO-8601 UTC, milliseconds): such strings sort by time."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class RowCodec:
    """Rows to `ArchiveRow`s and back: paths are stored relative to the output folder `root` if inside it."""

    root: Path
    where: str  # how errors name the archive

    def stored_path(self, path: Path) -> str:
        """Relative to the root in POSIX form when inside it (the folder can move), else absolute."""
        absolute = (self.root / path).resolve()
        if absolute.is_relative_to(self.root):
            return absolute.relative_to(self.root).as_posix()
        return absolute.as_posix()

    def row(self, values: Sequence[Any]) -> ArchiveRow:
        fields = dict(zip(COLUMNS, values, strict=True))
        try:
            status = Status(fields["status"])
            kind = None if fields["error_kind"] is None else ErrorKind(fields["error_kind"])
        except ValueError as exc:
            raise ArchiveError(f"{self.where}: video {fields['video_id']}: {exc}") from exc
        return ArchiveRow(
            **{
                **fields,
                "status": status,
                "error_kind": kind,
                "note_path": self._absolute(fields["note_path"]),
                "transcript_path": self._absolute(fields["transcript_path"]),
            }
        )

    def _absolute(self, stored: str | None) -> Path | None:
        return None if stored is None else self.root / stored
