"""Writing one video's note into the output tree: its subject folder, the files, the links, all atomic.

`NoteWriter.write` chooses the note's subject (`--subject`, else `--auto-subject`'s choice, and a note
already written stays where it is), reserves its file name, writes the transcript (`--save-transcript`)
and the note (Markdown with front matter, or JSON), saves the transcript's JSON for `notes regenerate`, and
links the note with its neighbours. Every file is written atomically under the tree's lock; the names stay
reserved until `release`, after the archive has recorded them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studybuddy.config import Settings
from studybuddy.models import NoteBody, Transcript, VideoMeta
from studybuddy.store.archive_rows import ArchiveRow
from studybuddy.store.formats import (
    render_note_json,
    render_transcript_as,
    save_transcript_json,
    saved_transcript_path,
    transcript_suffix,
)
from studybuddy.store.links import Linker
from studybuddy.store.output import OutputTree, atomic_write_text
from studybuddy.store.render import render_note
from studybuddy.store.subjects import SubjectChooser, subject_of

__all__ = ["NoteWriter", "WrittenNote"]


@dataclass(frozen=True, slots=True)
class WrittenNote:
    note_path: Path
    transcript_path: Path | None
    subject: str | None  # the folder it is in, relative to the tree's root (None: the root)


class NoteWriter:
    """Writes notes into one output tree. Thread-safe (the tree and the linker hold their own locks)."""

    def __init__(
        self,
        settings: Settings,
        output: OutputTree,
        *,
        linker: Linker | None = None,
        subjects: SubjectChooser | None = None,
    ) -> None:
        self.settings = settings
        self.output = output
        self.linker = linker  # links related notes both ways after each note is written
        self.subjects = subjects  # chooses each note's subject folder (--auto-subject)

    @classmethod
    def for_settings(cls, settings: Settings) -> NoteWriter:
        """Into `settings.output`, linking notes (`--links`) and choosing subjects (`--auto-subject`)."""
        output = OutputTree(settings.output)
        linker = Linker(output.root, write_links=settings.links)
        subjects = SubjectChooser(linker) if settings.auto_subject and not settings.subject else None
        return cls(settings, output, linker=linker if settings.links or subjects else None, subjects=subjects)

    def write(
        self, meta: VideoMeta, transcript: Transcript, body: NoteBody | None, row: ArchiveRow | None
    ) -> WrittenNote:
        """Write the note of `meta` (transcript only without `body`); `row` is the video's archive row."""
        subject = self._subject(meta, body.note.text if body else transcript.text, row)
        as_json = body is not None and self.settings.note_format == "json"
        note_path = self.output.note_path(
            meta.video_id,
            meta.title,
            subject,
            previous=row.note_path if row else None,
            suffix=".json" if as_json else ".md",
        )
        if body is not None:  # for `notes regenerate`: the note can be written again without YouTube
            saved = saved_transcript_path(self.output.root, meta.video_id)
            atomic_write_text(saved, save_transcript_json(meta, transcript))  # hidden, never a note
        transcript_path = None
        if self.settings.save_transcript:
            transcript_format = self.settings.transcript_format
            transcript_path = self.output.note_path(
                meta.video_id,
                meta.title,
                subject,
                previous=row.transcript_path if row else None,
                suffix=transcript_suffix(transcript_format),
            )
            self.output.write(transcript_path, render_transcript_as(meta, transcript, transcript_format))
        folder = subject_of(self.output.root, note_path)
        if as_json:
            assert body is not None  # as_json is only True with a body
            self.output.write(note_path, render_note_json(meta, transcript, body))
            return WrittenNote(note_path, transcript_path, folder)
        note = render_note(
            meta,
            transcript,
            body,
            prompt_version=body.prompt_version if body else None,
            transcript_path=transcript_path,
            subject=folder,
        )
        self.output.write(note_path, note)  # under the tree's lock, as a backlink rewrite is
        if self.linker is not None:
            self.linker.link_written(note_path)
        return WrittenNote(note_path, transcript_path, folder)

    def release(self, written: WrittenNote) -> None:
        """The archive has recorded `written`: its file names are no longer reserved."""
        self.output.release(written.note_path, written.transcript_path)

    def subjects_chosen(self) -> tuple[str, ...]:
        """One line per subject `--auto-subject` chose or made (for the run's report)."""
        return tuple(self.subjects.report_lines()) if self.subjects else ()

    def _subject(self, meta: VideoMeta, text: str, row: ArchiveRow | None) -> str | None:
        """`--subject`, else (`--auto-subject`) a chosen one; a note already written stays where it is."""
        if self.subjects is None or self.settings.subject or (row is not None and row.note_path is not None):
            return self.settings.subject
        return self.subjects.choose(meta, text).subject
