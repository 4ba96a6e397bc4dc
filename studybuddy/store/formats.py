"""Other shapes of a note and a transcript: the note as JSON (`--format json`: the same checked structure the
Markdown note is rendered from), the transcript as txt, srt, vtt or md (`--transcript-format`), and the
machine-readable transcript saved for `notes regenerate`.

Subtitles come from youtube-transcript-api's own formatters, fed a `FetchedTranscript` made of our segments.
The saved transcript (`<output>/.transcripts/<video_id>.json`) holds the segments, the language and the
video's metadata: enough to write the note again without asking YouTube.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from studybuddy.errors import InputError
from studybuddy.models import Chapter, NoteBody, Segment, Transcript, VideoMeta
from studybuddy.store.output import id_in_path
from studybuddy.store.render import note_json, render_transcript, video_fields

__all__ = [
    "load_saved_transcript",
    "render_note_json",
    "render_transcript_as",
    "save_transcript_json",
    "saved_transcript_path",
    "transcript_suffix",
]

SAVED_TRANSCRIPTS = ".transcripts"
_SAVED_VERSION = 1


def transcript_suffix(transcript_format: str) -> str:
    """The file suffix of a transcript saved beside its note: `.transcript.md`, `.transcript.srt`, ..."""
    return f".transcript.{transcript_format}"


def render_transcript_as(meta: VideoMeta, transcript: Transcript, transcript_format: str) -> str:
    """The transcript in `transcript_format`: md (timestamp links), txt, srt or vtt (subtitles)."""
    from youtube_transcript_api import FetchedTranscript, FetchedTranscriptSnippet
    from youtube_transcript_api.formatters import SRTFormatter, TextFormatter, WebVTTFormatter

    if transcript_format == "md":
        return render_transcript(meta, transcript)
    formatters = {"txt": TextFormatter, "srt": SRTFormatter, "vtt": WebVTTFormatter}
    if transcript_format not in formatters:
        raise InputError(f"--transcript-format {transcript_format!r}: expected one of md, txt, srt, vtt")
    fetched = FetchedTranscript(
        snippets=[FetchedTranscriptSnippet(s.text, s.start, s.duration) for s in transcript.segments],
        video_id=transcript.video_id,
        language=transcript.language,
        language_code=transcript.language_code,
        is_generated=transcript.is_generated,
    )
    text: str = formatters[transcript_format]().format_transcript(fetched)
    return text if text.endswith("\n") else text + "\n"


def render_note_json(
    meta: VideoMeta,
    transcript: Transcript,
    body: NoteBody,
    *,
    generated_at: datetime | None = None,
) -> str:
    """The structured note: the video's metadata, the note's checked structure and what it cost.

    Seconds are whole seconds of the video (`meta.url` plus `&t=` opens it there).
    """
    when = generated_at or datetime.now(UTC)
    note = {
        "meta": {
            **video_fields(meta, transcript, body),
            "chapters": [asdict(chapter) for chapter in meta.chapters],
            "model": body.model,
            "prompt_version": body.prompt_version,
            "generated_at": when.isoformat(timespec="seconds"),
        },
        "note": note_json(body.note),
        "usage": asdict(body.usage),
    }
    return json.dumps(note, ensure_ascii=False, indent=2) + "\n"


def saved_transcript_path(root: Path, video_id: str) -> Path:
    """Where the machine-readable transcript of `video_id` is kept under the output root (OutputError for
    an id that is not a video id)."""
    return root / SAVED_TRANSCRIPTS / f"{id_in_path(video_id)}.json"


def save_transcript_json(meta: VideoMeta, transcript: Transcript) -> str:
    """The transcript and metadata as JSON, for `load_saved_transcript`."""
    saved = {
        "version": _SAVED_VERSION,
        "meta": {**asdict(meta), "tags": list(meta.tags)},
        "transcript": {
            **{key: value for key, value in asdict(transcript).items() if key != "segments"},
            "segments": [[s.start, s.duration, s.text] for s in transcript.segments],
        },
    }
    return json.dumps(saved, ensure_ascii=False) + "\n"


def load_saved_transcript(path: Path) -> tuple[VideoMeta, Transcript]:
    """Read a transcript saved by `save_transcript_json`; a missing or damaged file is an InputError."""
    try:
        saved: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        meta_fields = dict(saved["meta"])
        meta_fields["tags"] = tuple(meta_fields["tags"])
        meta_fields["chapters"] = tuple(Chapter(**chapter) for chapter in meta_fields["chapters"])
        transcript_fields = dict(saved["transcript"])
        transcript_fields["segments"] = tuple(Segment(*segment) for segment in transcript_fields["segments"])
        return VideoMeta(**meta_fields), Transcript(**transcript_fields)
    except FileNotFoundError:
        raise InputError(f"{path}: no saved transcript") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a saved transcript ({exc.__class__.__name__})") from None
