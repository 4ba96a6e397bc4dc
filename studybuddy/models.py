"""Plain data passed between the modules: what a video is, what was fetched, what was written."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from studybuddy.schema import StudyNote

VIDEO_ID_PATTERN: re.Pattern[str] = re.compile(r"[A-Za-z0-9_-]{11}")  # a video id's form


@dataclass(frozen=True, slots=True)
class Segment:
    """One caption line: `start` and `duration` in seconds."""

    start: float
    duration: float
    text: str


@dataclass(frozen=True, slots=True)
class Transcript:
    """A fetched transcript in the language it was fetched in."""

    video_id: str
    language: str
    language_code: str
    is_generated: bool
    segments: tuple[Segment, ...]
    translated_from: str | None = None
    fallback_reason: str | None = (
        None  # why these captions and not the preferred ones ("... need a PO token")
    )

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments)

    @property
    def end(self) -> float:
        """The second the last caption ends (0 for an empty transcript)."""
        return max((s.start + s.duration for s in self.segments), default=0.0)


@dataclass(frozen=True, slots=True)
class Chapter:
    start: float
    title: str


@dataclass(frozen=True, slots=True)
class VideoMeta:
    """What we know about a video besides its transcript. Only `video_id` is certain."""

    video_id: str
    title: str | None = None
    channel: str | None = None
    duration: float | None = None
    upload_date: str | None = None  # ISO date, YYYY-MM-DD
    description: str | None = None
    tags: tuple[str, ...] = ()
    chapters: tuple[Chapter, ...] = ()
    category: str | None = None  # YouTube's category, e.g. "Education"

    @property
    def url(self) -> str:
        return f"https://www.youtube.com/watch?v={self.video_id}"

    @property
    def display_title(self) -> str:
        return self.title or f"Video {self.video_id}"


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one note cost."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True, slots=True)
class NoteBody:
    """What a note engine produced: the note's checked structure (rendered by `note_render`) and its cost."""

    note: StudyNote
    model: str
    usage: Usage = field(default_factory=Usage)
    prompt_version: str | None = None  # which prompts wrote it (None: an engine without prompts)
    language: str | None = None  # the language the note is written in (None: the transcript's)
