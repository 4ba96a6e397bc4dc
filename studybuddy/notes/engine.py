"""The note engine protocol: what turns a transcript into a note's checked structure.

An engine turns a `Transcript` (plus its `VideoMeta`) into a `NoteBody`: the note's checked structure
(`schema.StudyNote`). The Anthropic engine lives in `notes.anthropic`, the offline one in `notes.offline`;
`store.render` writes any engine's note, the same way.
"""

from __future__ import annotations

from typing import Protocol

from studybuddy.models import NoteBody, Transcript, VideoMeta

__all__ = ["NoteEngine"]


class NoteEngine(Protocol):
    """Something that writes the checked structure of a note from a transcript."""

    name: str

    def check(self) -> None:
        """Fail fast (NotesFatalError) when the engine cannot work at all, before any video runs."""

    def generate(self, meta: VideoMeta, transcript: Transcript) -> NoteBody: ...

    def close(self) -> None: ...
