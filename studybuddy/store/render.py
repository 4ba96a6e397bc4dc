"""The one renderer: a checked `StudyNote` as the Markdown body of an Obsidian note, or as JSON.

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
from typing import Any

from studybuddy.schema import ASSESSMENT_GROUPS, Question, StudyNote

__all__ = ["format_clock", "note_json", "render_body", "timestamp_link"]

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
