"""The one renderer: a checked `StudyNote` as the Markdown body of an Obsidian note, or as JSON; and the
note file around it (YAML front matter, title, link line), or the transcript-only note without one.

Every engine's note goes through here, so notes look the same whatever wrote them: the same sections in the
same order (a section with nothing in it is left out), every second a link `https://youtu.be/ID?t=S`, and
every answer folded in a `> [!question]- Answer` callout. Text fields are inline Markdown; what would break
the note's structure (a wiki link, a heading or quote marker at the start of a paragraph) is escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

import yaml

from studybuddy.models import NoteBody, Transcript, VideoMeta
from studybuddy.schema import ASSESSMENT_GROUPS, Question, StudyNote
from studybuddy.text import one_line

__all__ = [
    "format_clock",
    "note_json",
    "render_body",
    "render_note",
    "render_transcript",
    "timestamp_link",
    "video_fields",
]

_GROUP_TITLES = dict(
    zip(ASSESSMENT_GROUPS, ("Gap analysis", "Application", "One step further", "Synthesis"), strict=True)
)
_WIKI = re.compile(r"\[\[|\]\]")
_BLOCK_START = re.compile(r"^(?=[#>+*-]|\d+[.)]\s)")


def format_clock(seconds: float) -> str:
    """`mm:ss`, or `h:mm:ss` from one hour on (whole seconds, never negative)."""
    hours, rest = divmod(max(int(seconds), 0), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def timestamp_link(video_id: str, seconds: float) -> str:
    """The short link that opens `video_id` at `seconds` (rounded down to a whole second)."""
    return f"https://youtu.be/{video_id}?t={max(int(seconds), 0)}"


def _inline(text: str) -> str:
    """Model or transcript text placed inside a line: no wiki links (the linker owns those)."""
    return _WIKI.sub(lambda match: "\\" + match.group(0)[0] + "\\" + match.group(0)[1], text)


def _paragraph(text: str) -> str:
    """Text that starts a block: it must stay a paragraph (not turn into a heading, quote or list)."""
    return _BLOCK_START.sub("\\\\", _inline(text))


class _Writer:
    def __init__(self, video_id: str) -> None:
        self.video_id = video_id

    def link(self, second: int) -> str:
        return f"[{format_clock(second)}]({timestamp_link(self.video_id, second)})"

    def questions(self, questions: Sequence[Question]) -> str:
        return "\n\n".join(
            f"{number}. {_inline(q.question)}\n> [!question]- Answer\n"
            f"> {_inline(q.answer)} ({self.link(q.second)})"
            for number, q in enumerate(questions, start=1)
        )

    def sections(self, note: StudyNote) -> list[tuple[str, str]]:
        """(heading, Markdown) of every section that has something in it, in the note's order."""
        parts = [("Summary", _paragraph(note.summary) if note.summary else "")]
        parts.append(
            (
                "Key concepts",
                "\n".join(
                    f"- **{_inline(c.term)}**: {_inline(c.definition)} ({self.link(c.second)})"
                    for c in note.key_concepts
                ),
            )
        )
        outline = []
        for item in note.outline:
            outline.append(f"### {self.link(item.second)} {_inline(item.title)}")
            if item.points:
                outline.append("\n".join(f"- {self.link(p.second)} {_inline(p.text)}" for p in item.points))
        parts.append(("Outline", "\n\n".join(outline)))
        examples = []
        for example in note.worked_examples:
            steps = "\n".join(
                f"{number}. {_inline(step)}" for number, step in enumerate(example.steps, start=1)
            )
            lines = [
                f"### {self.link(example.second)} {_inline(example.problem)}",
                steps,
                f"**Result:** {_inline(example.result)}",
            ]
            examples.append("\n\n".join(line for line in lines if line))
        parts.append(("Worked examples", "\n\n".join(examples)))
        parts.append(
            (
                "Common misconceptions",
                "\n".join(
                    f"- {_inline(m.mistake)} **Correct view:** {_inline(m.correction)}"
                    for m in note.misconceptions
                ),
            )
        )
        parts.append(
            (
                "Connections",
                "\n".join(f"- **{_inline(c.topic)}**: {_inline(c.relation)}" for c in note.connections),
            )
        )
        parts.append(("Review questions", self.questions(note.review_questions)))
        if note.assessment is not None:
            groups = [
                f"### {_GROUP_TITLES[name]}\n\n{self.questions(questions)}"
                for name, questions in note.assessment.groups()
                if questions
            ]
            parts.append(("Assessment", "\n\n".join(groups)))
        return [(heading, text) for heading, text in parts if text]


def render_body(note: StudyNote, video_id: str) -> str:
    """The note's sections as Markdown (`## ` headings), links into video `video_id`."""
    return "\n\n".join(f"## {heading}\n\n{text}" for heading, text in _Writer(video_id).sections(note)) + "\n"


def note_json(note: StudyNote) -> dict[str, Any]:
    """The structure as JSON-ready values (tuples as lists; seconds as whole numbers)."""
    plain: dict[str, Any] = json.loads(json.dumps(asdict(note)))
    return plain


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


def _transcript_lines(transcript: Transcript) -> list[tuple[float, str]]:
    """(start, text) of every caption that has text, whitespace collapsed."""
    lines = [(segment.start, one_line(segment.text)) for segment in transcript.segments]
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
        language += f" ({one_line(transcript.fallback_reason)})"
    parts = [f"[Watch on YouTube]({meta.url})", one_line(meta.channel or ""), language]
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
    return f"{front_matter}\n# {one_line(meta.display_title)}\n\n{link_line}\n\n{content}\n"


def render_transcript(meta: VideoMeta, transcript: Transcript) -> str:
    """The transcript as Markdown: one `[mm:ss](https://youtu.be/ID?t=S) text` line per caption."""
    return (
        f"# {one_line(meta.display_title)}: transcript\n\n"
        f"{_link_line(meta, transcript)}\n\n{_caption_lines(meta, transcript)}\n"
    )
