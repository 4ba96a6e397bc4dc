"""What a note is made of: the validated structure, the tools that ask the model for it, and the parser.

Every Anthropic call asks for a structure, not free text: the request defines a tool whose `input_schema` is
the structure's JSON schema and forces the model to call it (`tool_choice` of type `tool`), so the answer is
a `tool_use` block whose `input` is JSON. `parse_answer` turns that JSON into the dataclasses below, and
says what does not fit the schema (a missing part, a second that is not a number, ...) instead of guessing.

    StudyNote     summary, key concepts, outline, worked examples, misconceptions, connections,
                  review questions, and (from its own call) the assessment's four groups
    Tool          one per call kind: the whole note, the notes on one section of a long video,
                  the overview of a long video (the parts that need the whole), the assessment

Seconds are whole seconds of the video. The parser only reads them; `note_checks` places them on captions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from studybuddy.text import one_line

__all__ = [
    "ASSESSMENT_GROUPS",
    "TOOL_PARTS",
    "Assessment",
    "Concept",
    "Connection",
    "Example",
    "Misconception",
    "OutlineItem",
    "Point",
    "Question",
    "StudyNote",
    "Tool",
    "fold_outline",
    "note_from_json",
    "parse_answer",
    "tool_definition",
]


@dataclass(frozen=True, slots=True)
class Concept:
    term: str
    definition: str
    second: int  # where the video explains it


@dataclass(frozen=True, slots=True)
class Point:
    second: int
    text: str


@dataclass(frozen=True, slots=True)
class OutlineItem:
    second: int  # where this part of the video starts
    title: str
    points: tuple[Point, ...] = ()


@dataclass(frozen=True, slots=True)
class Example:
    second: int
    problem: str
    steps: tuple[str, ...]
    result: str


@dataclass(frozen=True, slots=True)
class Misconception:
    mistake: str
    correction: str  # the correct view, and why


@dataclass(frozen=True, slots=True)
class Connection:
    topic: str
    relation: str  # how it connects to the video: a prerequisite, a next step, a related idea


@dataclass(frozen=True, slots=True)
class Question:
    question: str
    answer: str
    second: int  # where the video explains the answer


ASSESSMENT_GROUPS = ("gap_analysis", "application", "one_step_further", "synthesis")


@dataclass(frozen=True, slots=True)
class Assessment:
    gap_analysis: tuple[Question, ...] = ()
    application: tuple[Question, ...] = ()
    one_step_further: tuple[Question, ...] = ()
    synthesis: tuple[Question, ...] = ()

    def groups(self) -> Iterator[tuple[str, tuple[Question, ...]]]:
        for name in ASSESSMENT_GROUPS:
            yield name, getattr(self, name)


@dataclass(frozen=True, slots=True)
class StudyNote:
    """A note, or the part of one that a single call wrote (the other parts stay empty)."""

    summary: str = ""
    key_concepts: tuple[Concept, ...] = ()
    outline: tuple[OutlineItem, ...] = ()
    worked_examples: tuple[Example, ...] = ()
    misconceptions: tuple[Misconception, ...] = ()
    connections: tuple[Connection, ...] = ()
    review_questions: tuple[Question, ...] = ()
    assessment: Assessment | None = None

    @property
    def text(self) -> str:
        """The note's words without structure (to compare notes by their topics)."""
        words = [self.summary]
        words += [f"{concept.term} {concept.definition}" for concept in self.key_concepts]
        for item in self.outline:
            words += [item.title, *(point.text for point in item.points)]
        words += [f"{example.problem} {example.result}" for example in self.worked_examples]
        return "\n".join(word for word in words if word)


def fold_outline(items: Iterable[OutlineItem]) -> tuple[OutlineItem, ...]:
    """The outline with every item whose start second is not later than the one before it folded into that
    one (its points join it): outline seconds then always increase."""
    folded: list[OutlineItem] = []
    for item in items:
        if folded and item.second <= folded[-1].second:
            folded[-1] = OutlineItem(folded[-1].second, folded[-1].title, folded[-1].points + item.points)
        else:
            folded.append(item)
    return tuple(folded)


class Tool(StrEnum):
    """The tools the calls force the model to use, one per kind of call."""

    NOTE = "write_note"
    SECTION = "write_section_notes"
    OVERVIEW = "write_overview"
    ASSESSMENT = "write_assessment"


_SECOND: dict[str, object] = {
    "type": "integer"
}  # whole seconds, copied from a `[Ns]` line (the system prompt says so)
_TEXT: dict[str, object] = {"type": "string"}


def _items(properties: Mapping[str, object]) -> dict[str, object]:
    """An array of objects with these properties, all required. (The tasks say how many; code checks.)"""
    return {
        "type": "array",
        "items": {"type": "object", "properties": dict(properties), "required": list(properties)},
    }


_QUESTIONS = _items({"question": _TEXT, "answer": _TEXT, "second": _SECOND})
_PARTS: dict[str, dict[str, object]] = {
    "summary": _TEXT,
    "key_concepts": _items({"term": _TEXT, "definition": _TEXT, "second": _SECOND}),
    "outline": _items(
        {"second": _SECOND, "title": _TEXT, "points": _items({"second": _SECOND, "text": _TEXT})}
    ),
    "worked_examples": _items(
        {"second": _SECOND, "problem": _TEXT, "steps": {"type": "array", "items": _TEXT}, "result": _TEXT}
    ),
    "misconceptions": _items({"mistake": _TEXT, "correction": _TEXT}),
    "connections": _items({"topic": _TEXT, "relation": _TEXT}),
    "review_questions": _QUESTIONS,
    **dict.fromkeys(ASSESSMENT_GROUPS, _QUESTIONS),
}
_NOTE_PARTS = (
    "summary",
    "key_concepts",
    "outline",
    "worked_examples",
    "misconceptions",
    "connections",
    "review_questions",
)
TOOL_PARTS: dict[Tool, tuple[str, ...]] = {
    Tool.NOTE: _NOTE_PARTS,
    Tool.SECTION: (
        "summary",
        "key_concepts",
        "outline",
        "worked_examples",
        "misconceptions",
        "review_questions",
    ),
    Tool.OVERVIEW: ("summary", "key_concepts", "connections"),
    Tool.ASSESSMENT: ASSESSMENT_GROUPS,
}
"""The parts each tool asks for, in the order the note shows them."""
_DESCRIPTIONS = {
    Tool.NOTE: "Record the study note of the whole video.",
    Tool.SECTION: "Record the notes on this section of a long video.",
    Tool.OVERVIEW: "Record the parts of a long video's note that need the whole video.",
    Tool.ASSESSMENT: "Record the assessment of the video: four groups of questions with answers.",
}


def tool_definition(tool: Tool) -> dict[str, object]:
    """The `tools` entry of a request: the tool's name, what it records, and its input schema."""
    parts = TOOL_PARTS[tool]
    return {
        "name": tool.value,
        "description": _DESCRIPTIONS[tool],
        "input_schema": {
            "type": "object",
            "properties": {part: _PARTS[part] for part in parts},
            "required": list(parts),
        },
    }


class _Reader:
    """Reads the model's JSON into dataclasses, collecting what does not fit instead of raising."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def text(self, value: object, where: str) -> str:
        if isinstance(value, str) and value.strip():
            return one_line(value)
        self.problems.append(f"{where} is not a non-empty text")
        return ""

    def second(self, value: object, where: str) -> int:
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str) and value.strip().isdigit():
            number = float(value.strip())
        if number is None or not math.isfinite(number) or number < 0:
            self.problems.append(f"{where} is not a number of seconds: {str(value)[:40]!r}")
            return -1
        return int(number)

    def objects(self, value: object, where: str) -> list[tuple[str, Mapping[str, object]]]:
        if not isinstance(value, list):
            self.problems.append(f"{where} is not a list")
            return []
        found = []
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                found.append((f"{where}[{index}]", item))
            else:
                self.problems.append(f"{where}[{index}] is not an object")
        return found

    def texts(self, value: object, where: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            self.problems.append(f"{where} is not a list")
            return ()
        return tuple(self.text(item, f"{where}[{index}]") for index, item in enumerate(value))

    def questions(self, value: object, where: str) -> tuple[Question, ...]:
        return tuple(
            Question(
                self.text(q.get("question"), f"{at}.question"),
                self.text(q.get("answer"), f"{at}.answer"),
                self.second(q.get("second"), f"{at}.second"),
            )
            for at, q in self.objects(value, where)
        )

    def concepts(self, value: object, where: str) -> tuple[Concept, ...]:
        return tuple(
            Concept(
                self.text(c.get("term"), f"{at}.term"),
                self.text(c.get("definition"), f"{at}.definition"),
                self.second(c.get("second"), f"{at}.second"),
            )
            for at, c in self.objects(value, where)
        )

    def outline(self, value: object, where: str) -> tuple[OutlineItem, ...]:
        return tuple(
            OutlineItem(
                self.second(item.get("second"), f"{at}.second"),
                self.text(item.get("title"), f"{at}.title"),
                tuple(
                    Point(
                        self.second(p.get("second"), f"{inner}.second"),
                        self.text(p.get("text"), f"{inner}.text"),
                    )
                    for inner, p in self.objects(item.get("points", []), f"{at}.points")
                ),
            )
            for at, item in self.objects(value, where)
        )

    def examples(self, value: object, where: str) -> tuple[Example, ...]:
        return tuple(
            Example(
                self.second(e.get("second"), f"{at}.second"),
                self.text(e.get("problem"), f"{at}.problem"),
                self.texts(e.get("steps", []), f"{at}.steps"),
                self.text(e.get("result"), f"{at}.result"),
            )
            for at, e in self.objects(value, where)
        )

    def misconceptions(self, value: object, where: str) -> tuple[Misconception, ...]:
        return tuple(
            Misconception(
                self.text(m.get("mistake"), f"{at}.mistake"),
                self.text(m.get("correction"), f"{at}.correction"),
            )
            for at, m in self.objects(value, where)
        )

    def connections(self, value: object, where: str) -> tuple[Connection, ...]:
        return tuple(
            Connection(
                self.text(c.get("topic"), f"{at}.topic"), self.text(c.get("relation"), f"{at}.relation")
            )
            for at, c in self.objects(value, where)
        )

    def part(self, name: str, value: object) -> object:
        """One part of the structure, by its name in the schema."""
        readers = {
            "summary": self.text,
            "key_concepts": self.concepts,
            "outline": self.outline,
            "worked_examples": self.examples,
            "misconceptions": self.misconceptions,
            "connections": self.connections,
        }
        return readers.get(name, self.questions)(value, name)


def parse_answer(tool: Tool, data: object) -> tuple[StudyNote, list[str]]:
    """The structure in a tool call's input, and what in it does not fit the tool's schema.

    Parts the tool does not ask for are ignored; an assessment comes back as `StudyNote.assessment`.
    """
    reader = _Reader()
    if not isinstance(data, Mapping):
        return StudyNote(), [f"the input of {tool.value} is not an object"]
    values: dict[str, Any] = {}
    for part in TOOL_PARTS[tool]:
        if part in data:
            values[part] = reader.part(part, data[part])
        else:
            reader.problems.append(f"the answer has no `{part}` (required)")
    if tool is Tool.ASSESSMENT:
        return StudyNote(assessment=Assessment(**values)), reader.problems
    return StudyNote(**values), reader.problems


def note_from_json(data: Mapping[str, Any]) -> StudyNote:
    """A structure serialised by `note_render.note_json` (or kept between the calls of a note), read back."""
    reader = _Reader()
    values: dict[str, Any] = {part: reader.part(part, data[part]) for part in _NOTE_PARTS if data.get(part)}
    groups = data.get("assessment")
    if isinstance(groups, Mapping):
        values["assessment"] = Assessment(
            **{g: reader.questions(groups.get(g, []), g) for g in ASSESSMENT_GROUPS}
        )
    if reader.problems:
        raise ValueError("; ".join(reader.problems[:3]))
    return StudyNote(**values)
