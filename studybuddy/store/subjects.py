"""Subjects: the sub-folder a note goes in. `--subject NAME` names it; `--auto-subject` chooses one.

An automatic choice prefers an existing subject folder whose notes are similar enough to the new note
(the mean of its best few TF-IDF similarities, from the `Linker`'s index); otherwise it starts a new folder
named after one of the video's keywords found in the note, else its YouTube category, else the first keyword.
Every choice is logged at INFO, listed in the run's report, and recorded in the note's front matter and the
archive, so a wrong guess is never hidden.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from studybuddy.models import VideoMeta
from studybuddy.store.links import Linker, tokenize
from studybuddy.store.output import safe_filename

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.15
NOTES_PER_FOLDER_SCORE = 3  # a folder's score: the mean of its best three similarities
FALLBACK_SUBJECT = "Unsorted"


@dataclass(frozen=True, slots=True)
class SubjectChoice:
    """Where `--auto-subject` put a video, and why."""

    video_id: str
    subject: str
    reason: str

    def describe(self) -> str:
        return f"{self.video_id} -> {self.subject} ({self.reason})"


def subject_of(root: Path, note_path: Path) -> str | None:
    """The subject folder a note is in (its top-level folder under `root`), or None at the top."""
    parts = note_path.resolve().relative_to(root.expanduser().resolve()).parts
    return parts[0] if len(parts) > 1 else None


def folder_scores(similar: list[tuple[str | None, float]]) -> dict[str, float]:
    """Each subject folder's score from (folder, similarity) pairs: the mean of its best few."""
    by_folder: dict[str, list[float]] = {}
    for folder, score in similar:
        if folder is not None:
            by_folder.setdefault(folder, []).append(score)
    return {
        folder: sum(sorted(scores, reverse=True)[:NOTES_PER_FOLDER_SCORE])
        / min(len(scores), NOTES_PER_FOLDER_SCORE)
        for folder, scores in by_folder.items()
    }


def new_subject_name(meta: VideoMeta, text: str) -> tuple[str, str]:
    """(name, reason) of a new subject: the keyword the note mentions most, else the category, else a tag."""
    words = Counter(tokenize(text))
    mentioned = [
        (sum(words[word] for word in tokenize(tag)), -index, tag) for index, tag in enumerate(meta.tags)
    ]
    best = max((item for item in mentioned if item[0] > 0), default=None)
    candidates = [
        (best[2] if best else None, "keyword"),
        (meta.category, "category"),
        (meta.tags[0] if meta.tags else None, "keyword"),
    ]
    for value, source in candidates:
        name = safe_filename(value or "", max_bytes=64)
        if name:
            return name[:1].upper() + name[1:], f"new, from the video's {source} {value!r}"
    return FALLBACK_SUBJECT, "new: the video has no keywords or category"


class SubjectChooser:
    """Chooses subjects with `--auto-subject`; thread-safe; remembers its choices for the report."""

    def __init__(self, linker: Linker, *, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.linker = linker
        self.threshold = threshold
        self._choices: list[SubjectChoice] = []
        self._lock = threading.Lock()

    def choose(self, meta: VideoMeta, text: str) -> SubjectChoice:
        """The subject for a new note with this text: a similar existing folder, else a new name."""
        similar = [(note.folder, score) for note, score in self.linker.similar(text)]
        scores = folder_scores(similar)
        best = max(scores.items(), key=lambda item: (item[1], item[0]), default=None)
        if best is not None and best[1] >= self.threshold:
            choice = SubjectChoice(meta.video_id, best[0], f"similar to its notes, {best[1]:.2f}")
        else:
            name, reason = new_subject_name(meta, text)
            if best is not None:
                reason += f"; closest folder {best[0]!r} only {best[1]:.2f}"
            choice = SubjectChoice(meta.video_id, name, reason)
        log.info("subject of %s", choice.describe())
        with self._lock:
            self._choices.append(choice)
        return choice

    def report_lines(self) -> list[str]:
        """One line per automatic choice, for the run's final report."""
        with self._lock:
            return [f"  subject  {choice.describe()}" for choice in self._choices]
