"""What a run's progress is made of: each video's `Stage`, its final `Outcome`, the run's `Summary`, and the
immutable rows, snapshots and events the `ProgressMonitor` hands to its views."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

__all__ = [
    "TERMINAL",
    "Outcome",
    "ProgressEvent",
    "ProgressSnapshot",
    "Stage",
    "Summary",
    "VideoRow",
    "WorkerRow",
]


class Stage(StrEnum):
    """Where a video is in the pipeline."""

    QUEUED = "queued"
    FETCHING = "fetching"
    NOTES = "notes"
    WRITING = "writing"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"

    @property
    def label(self) -> str:
        """The word shown to users."""
        return "writing notes" if self is Stage.NOTES else self.value

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def is_active(self) -> bool:
        return self in ACTIVE


TERMINAL = frozenset({Stage.DONE, Stage.SKIPPED, Stage.FAILED})
ACTIVE = frozenset({Stage.FETCHING, Stage.NOTES, Stage.WRITING})


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one video ended. `kind` is the `ErrorKind` value of a failure."""

    video_id: str
    stage: Stage
    title: str | None = None
    kind: str | None = None
    reason: str | None = None
    note_path: Path | None = None

    def __post_init__(self) -> None:
        if not self.stage.is_terminal:
            raise ValueError(f"an outcome must be done, skipped or failed, not {self.stage.label}")

    @property
    def detail(self) -> str | None:
        """What a user wants to know next to the stage: the note written or why it failed."""
        if self.stage is Stage.FAILED:
            return self.reason or self.kind
        return str(self.note_path) if self.note_path else self.reason


@dataclass(frozen=True, slots=True)
class Summary:
    """The end of a run, for `format_summary` and the CLI's `--json`."""

    total: int
    done: int
    skipped: int
    failed: int
    failed_by_kind: dict[str, int]
    elapsed_s: float
    outcomes: tuple[Outcome, ...]  # every video's, or only the failures' (see ProgressMonitor)

    def to_json(self) -> dict[str, object]:
        return {
            "total": self.total,
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "failed_by_kind": dict(self.failed_by_kind),
            "elapsed_s": round(self.elapsed_s, 3),
            "outcomes": [
                {
                    "video_id": o.video_id,
                    "stage": o.stage.value,
                    "title": o.title,
                    "kind": o.kind,
                    "reason": o.reason,
                    "note_path": str(o.note_path) if o.note_path else None,
                }
                for o in self.outcomes
            ],
        }


@dataclass(frozen=True, slots=True)
class VideoRow:
    video_id: str
    title: str | None
    stage: Stage
    worker: int | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class WorkerRow:
    worker: int
    video_id: str | None
    title: str | None
    stage: Stage | None
    exit_label: str | None
    circuit_age_s: float | None


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """An immutable copy of the state for a view: counts, at most `max_rows` videos, every worker."""

    total: int
    done: int
    skipped: int
    failed: int
    active: int
    workers_planned: int
    rows: tuple[VideoRow, ...]  # recent finished (oldest first), then active, then queued
    hidden_rows: int
    workers: tuple[WorkerRow, ...]
    elapsed_s: float
    eta_s: float | None
    notice: str | None = None  # what the run as a whole is waiting for, in plain words (None: nothing)

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One stage change, numbered; `finished` and `total` are the counts right after it."""

    seq: int
    video_id: str
    title: str | None
    stage: Stage
    worker: int | None
    finished: int
    total: int
    outcome: Outcome | None
