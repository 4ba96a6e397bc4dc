"""Study notes: the engine protocol, and the note file around an engine's structure.

An engine turns a `Transcript` (plus its `VideoMeta`) into a `NoteBody`: the note's checked structure
(`note_schema.StudyNote`). `render_note` wraps its Markdown (`note_render.render_body`, the one renderer
every engine's note goes through) in YAML front matter, a title and a link line; for transcript-only runs it
refers to the transcript instead. The Anthropic engine lives in `anthropic_engine`, the offline one in
`offline`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any, Protocol
from urllib.parse import quote

import yaml

from studybuddy.models import NoteBody, Transcript, VideoMeta
from studybuddy.store.render import format_clock, render_body, timestamp_link

__all__ = ["NoteEngine", "render_note", "render_transcript", "video_fields"]

_YAML_LINE_WIDTH = 1 << 16  # never fold a long title over several lines
_LINE_BREAKS = frozenset("\n\r\x85\u2028\u2029")


class _FrontMatterDumper(yaml.SafeDumper):
    """A safe dumper whose strings read back as written and stay on one line.

    With `allow_unicode`, PyYAML writes NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR raw in plain and
    single-quoted scalars, where a reader folds them into spaces; and a multi-line scalar could hold a
    `---` line that ends the front matter early for other readers. Double quotes escape every break.
    """


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if _LINE_BREAKS.intersection(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_FrontMatterDumper.add_representer(str, _represent_str)


class NoteEngine(Protocol):
    """Something that writes the checked structure of a note from a transcript."""

    name: str

    def check(self) -> None:
        """Fail fast (NotesFatalError) when the engine cannot work at all, before any video runs."""

    def generate(self, meta: VideoMeta, transcript: Transcript) -> NoteBody: ...

    def close(self) -> None: ...


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _transcript_lines(transcript: Transcript) -> list[tuple[float, str]]:
    """(start, text) of every caption that has text, whitespace collapsed."""
    lines = [(segment.start, _one_line(segment.text)) for segment in transcript.segments]
    return [(start, text) for start, text in lines if text]


def video_fields(meta: VideoMeta, transcript: Transcript, body: NoteBody | None = None) -> dict[str, Any]:
    """What a note records about its video (front matter, or the `meta` of a JSON note).

    `language` is the language the note is written in; a note written in another language than its
    transcript's (`--notes-lang`) names the transcript's as `source_language`.
    """
    language = body.language if body is not None and body.language else transcript.language_code
    fields: dict[str, Any] = {
        "title": meta.display_title,
        "video_id": meta.video_id,
        "url": meta.url,
        "channel": meta.channel,
        "duration": round(meta.duration) if meta.duration is not None else None,
        "upload_date": meta.upload_date,
        "language": language,
    }
    if language != transcript.language_code:
        fields["source_language"] = transcript.language_code
    return fields


def _front_matter(
    meta: VideoMeta,
    transcript: Transcript,
    body: NoteBody | None,
    *,
    tags: Sequence[str],
    prompt_version: str | None,
    generated_at: datetime,
    subject: str | None = None,
) -> str:
    fields: dict[str, Any] = {
        **video_fields(meta, transcript, body),
        "tags": list(tags),
        "model": body.model if body else None,
        "prompt_version": prompt_version,
        "generated_at": generated_at.isoformat(timespec="seconds"),
    }
    if subject:
        fields["subject"] = subject
    dumped = yaml.dump(
        fields, Dumper=_FrontMatterDumper, sort_keys=False, allow_unicode=True, width=_YAML_LINE_WIDTH
    )
    return f"---\n{dumped}---\n"


def _link_line(meta: VideoMeta, transcript: Transcript, transcript_link: str | None = None) -> str:
    captions = "automatic captions" if transcript.is_generated else "captions"
    language = f"{transcript.language} {captions}"
    if transcript.translated_from:
        language += f" translated from {transcript.translated_from}"
    if transcript.fallback_reason:
        language += f" ({_one_line(transcript.fallback_reason)})"
    parts = [f"[Watch on YouTube]({meta.url})", _one_line(meta.channel or ""), language]
    if meta.duration is not None:
        parts.append(format_clock(meta.duration))
    if meta.upload_date:
        parts.append(meta.upload_date)
    if transcript_link:
        parts.append(f"[Transcript]({transcript_link})")
    return " · ".join(part for part in parts if part)


def _caption_lines(meta: VideoMeta, transcript: Transcript) -> str:
    return "\n".join(
        f"- [{format_clock(start)}]({timestamp_link(meta.video_id, start)}) {text}"
        for start, text in _transcript_lines(transcript)
    )


def render_note(
    meta: VideoMeta,
    transcript: Transcript,
    body: NoteBody | None,
    *,
    tags: Sequence[str] = (),
    prompt_version: str | None = None,
    transcript_path: str | PurePath | None = None,
    generated_at: datetime | None = None,
    subject: str | None = None,
) -> str:
    """The whole note file: YAML front matter, `# Title`, a link line, then the body.

    `transcript_path` is the transcript file written beside the note: the link line points to it by
    name. With `body=None` (a transcript-only run) the note refers to that file, or, without one, carries
    the timestamped transcript itself.
    """
    when = generated_at or datetime.now(UTC)
    transcript_link = quote(PurePath(transcript_path).name) if transcript_path is not None else None
    if body is not None:
        content = render_body(body.note, meta.video_id).strip()
    elif transcript_link is not None:
        content = f"No notes were written for this video: [read the transcript]({transcript_link})."
    else:
        content = "No notes were written for this video.\n\n## Transcript\n\n" + _caption_lines(
            meta, transcript
        )
    front_matter = _front_matter(
        meta, transcript, body, tags=tags, prompt_version=prompt_version, generated_at=when, subject=subject
    )
    link_line = _link_line(meta, transcript, transcript_link)
    return f"{front_matter}\n# {_one_line(meta.display_title)}\n\n{link_line}\n\n{content}\n"


def render_transcript(meta: VideoMeta, transcript: Transcript) -> str:
    """The transcript as Markdown: one `[mm:ss](https://youtu.be/ID?t=S) text` line per caption."""
    return (
        f"# {_one_line(meta.display_title)}: transcript\n\n"
        f"{_link_line(meta, transcript)}\n\n{_caption_lines(meta, transcript)}\n"
    )
