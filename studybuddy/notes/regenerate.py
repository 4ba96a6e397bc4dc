"""`study-buddy notes regenerate`: write the notes of done videos again from their saved transcripts.

Nothing is fetched from YouTube: every done video's transcript and metadata come from
`<output>/.transcripts/<video_id>.json` (saved with each written note). Each note keeps its path and format
(`.md` or `.json`); with `older_than_prompt` only notes written by other prompts than the current ones
(`PROMPT_VERSION`, recorded in the archive) are redone. A refused key or unknown model stops before any note
is touched; a note that fails keeps its old file. A recorded note path that is not a note file inside the
output folder (outside it, through a symbolic link, in a hidden folder) is refused before anything is paid.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from studybuddy.config import Settings
from studybuddy.errors import InputError, NotesError, NotesFatalError, OutputError
from studybuddy.notes.engine import NoteEngine
from studybuddy.notes.prompting import PROMPT_VERSION
from studybuddy.store.archive import Archive
from studybuddy.store.archive_rows import ArchiveRow, Status
from studybuddy.store.formats import load_saved_transcript, render_note_json, saved_transcript_path
from studybuddy.store.links import Linker
from studybuddy.store.output import OutputTree
from studybuddy.store.render import render_note

__all__ = ["RegenerateOutcome", "regenerate"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RegenerateOutcome:
    """Video ids regenerated, and (video id, reason) of those skipped or failed."""

    regenerated: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def report(self) -> str:
        lines = [f"{video_id}: skipped: {reason}" for video_id, reason in self.skipped]
        lines += [f"{video_id}: failed: {reason}" for video_id, reason in self.failed]
        lines.append(
            f"{len(self.regenerated)} regenerated, {len(self.skipped)} skipped, {len(self.failed)} failed"
        )
        return "\n".join(lines)


def regenerate(
    settings: Settings,
    engine: NoteEngine,
    *,
    older_than_prompt: bool,
    on_note: Callable[[str], None] | None = None,
) -> RegenerateOutcome:
    """Regenerate the notes of the done videos in `settings.output` with `engine` (one video at a time)."""
    if settings.archive is None and not (settings.output / Archive.FILENAME).is_file():
        raise InputError(f"{settings.output}: no archive here (run study-buddy with --output first)")
    outcome = RegenerateOutcome()
    with Archive.open(settings.output, settings.archive) as archive:
        rows = [row for row in archive.rows(status=Status.DONE) if row.note_path and row.model]
        if older_than_prompt:
            rows = [row for row in rows if row.prompt_version != PROMPT_VERSION]
        if rows:
            engine.check()
        linker = Linker(archive.root) if settings.links else None
        tree = OutputTree(archive.root)
        for row in rows:
            try:
                _regenerate_one(archive, tree, engine, row, linker)
            except NotesFatalError:
                raise
            except (InputError, NotesError, OutputError) as exc:
                target = outcome.skipped if isinstance(exc, InputError) else outcome.failed
                target.append((row.video_id, str(exc)))
                continue
            outcome.regenerated.append(row.video_id)
            if on_note is not None:
                on_note(row.video_id)
    return outcome


def _regenerate_one(
    archive: Archive, tree: OutputTree, engine: NoteEngine, row: ArchiveRow, linker: Linker | None
) -> None:
    started = time.monotonic()
    assert row.note_path is not None  # only rows with a written note are regenerated
    note_path = tree.inside(row.note_path)
    if note_path is None or note_path.suffix not in (".md", ".json"):
        raise OutputError(
            f"{row.note_path}: not a note file inside the output folder {tree.root}; not written"
        )
    meta, transcript = load_saved_transcript(saved_transcript_path(archive.root, row.video_id))
    body = engine.generate(meta, transcript)
    if note_path.suffix == ".json":
        tree.write(note_path, render_note_json(meta, transcript, body))
    else:
        note = render_note(
            meta,
            transcript,
            body,
            prompt_version=body.prompt_version,
            transcript_path=row.transcript_path,
            subject=row.subject,
        )
        tree.write(note_path, note)  # under the tree's lock, as a backlink rewrite is
        if linker is not None:
            linker.link_written(note_path)
    archive.record_done(
        row.video_id,
        title=row.title,
        channel=row.channel,
        note_path=note_path,
        transcript_path=row.transcript_path,
        usage=body.usage,
        model=body.model,
        exit_fingerprint=row.exit_fingerprint,
        elapsed_s=time.monotonic() - started,
        prompt_version=body.prompt_version,
    )
    log.info("%s: note regenerated at %s", row.video_id, note_path)
