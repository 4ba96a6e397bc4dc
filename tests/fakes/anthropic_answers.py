"""What the fake Anthropic API answers: the input of the forced tool call, shaped like a real model's, built
from the material the request sent, so every second it gives is one the material holds; and, on demand,
answers that break the rules the product checks.

The material is read from the request (the system blocks and the messages): the transcript's `[Ns] text`
lines, or, for a long video's overview and assessment, the `[Ns]` lines of the section notes. The kind of
answer comes from the forced tool (`tool_choice.name`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_LINE = re.compile(r"^\s*-?\s*\[(\d+)s\] (.+)$", re.MULTILINE)
_TRANSCRIPT = re.compile(r"<transcript[^>]*>\n(.*?)\n</transcript>", re.DOTALL)
_SECTION_NOTES = re.compile(r"<section_notes>\n(.*?)\n</section_notes>", re.DOTALL)
_DURATION = re.compile(r"^duration: (?:(\d+):)?(\d+):(\d+)$", re.MULTILINE)
_TOKEN = re.compile(r"[^\W\d_]+|\d{1,3}|[^\w\s]+")

BREAKS = (
    "past_end",
    "all_past_end",
    "missing_section",
    "unordered",
    "max_tokens",
    "prose",
    "refusal",
    "context_window",
)
"""The ways an answer can be broken on demand (`FakeAnthropic.breaks`)."""


def count_tokens(text: str) -> int:
    """Tokens as a BPE tokenizer counts them, roughly: a word in pieces of up to 5 letters, a number in
    groups of up to 3 digits, a run of punctuation in pairs (so `[754s]` is 4 tokens, not 1.5)."""
    total = 0
    for piece in _TOKEN.findall(text):
        size = 3 if piece[0].isdigit() else 2 if not piece[0].isalpha() else 5
        total += math.ceil(len(piece) / size)
    return total


@dataclass(frozen=True, slots=True)
class Moment:
    second: int
    text: str

    @property
    def words(self) -> str:
        return " ".join(self.text.split()[:8])


def request_text(params: dict[str, Any]) -> str:
    """All the text a request sends: its system blocks and its messages (tool inputs as they were sent)."""
    system = params.get("system", "")
    parts = [system] if isinstance(system, str) else [block.get("text", "") for block in system]
    for message in params.get("messages", []):
        content = message["content"]
        if isinstance(content, str):
            parts.append(content)
            continue
        for block in content:
            parts.append(str(block.get("text") or block.get("input") or block.get("content") or ""))
    return "\n".join(parts)


def transcript_lines(material: str) -> list[Moment]:
    """The `[Ns] text` lines of the request's transcript."""
    found = _TRANSCRIPT.search(material)
    return [Moment(int(s), text) for s, text in _LINE.findall(found.group(1))] if found else []


def moments(material: str) -> list[Moment]:
    """The transcript's lines, or (for a long video's overview and assessment) the section notes' lines."""
    lines = transcript_lines(material)
    if lines:
        return lines
    notes = _SECTION_NOTES.search(material)
    return [Moment(int(s), text) for s, text in _LINE.findall(notes.group(1))] if notes else []


def video_end(material: str, found: Sequence[Moment]) -> int:
    """The video's length from `<video>` (else the last moment)."""
    duration = _DURATION.search(material)
    if duration is None:
        return found[-1].second if found else 0
    hours, minutes, seconds = (int(part or 0) for part in duration.groups())
    return hours * 3600 + minutes * 60 + seconds


def _spread(found: Sequence[Moment], count: int) -> list[Moment]:
    """Up to `count` moments spread evenly from the first to the last."""
    if len(found) <= count:
        return list(found)
    if count == 1:
        return [found[len(found) // 2]]
    step = (len(found) - 1) / (count - 1)
    return [found[round(index * step)] for index in range(count)]


def _concept(moment: Moment) -> dict[str, Any]:
    term = moment.words.split()[0].strip(".,").capitalize()
    return {"term": term, "definition": "What the speaker introduces here.", "second": moment.second}


def _outline(found: Sequence[Moment], points: int) -> list[dict[str, Any]]:
    """One part, from the first moment on, with `points` points spread over the material."""
    spread = [{"second": m.second, "text": m.words} for m in _spread(found, points)]
    return [{"second": found[0].second, "title": "Main ideas", "points": spread}]


def _question(moment: Moment, kind: str) -> dict[str, Any]:
    return {
        "question": f"{kind}: what follows from “{moment.words}”?",
        "answer": "It follows from what is said there.",
        "second": moment.second,
    }


def answer_input(tool: str, material: str) -> dict[str, Any]:
    """The input a model would give the forced tool `tool` for this material: as much as a short answer
    holds (a sentence of summary, a concept, twelve outline points, one of everything else)."""
    found = moments(material) or [Moment(0, "nothing was said")]
    middle = found[len(found) // 2]
    summary = f"The video explains {middle.words}."
    connection = {"topic": "Prerequisites", "relation": "The basics this video assumes."}
    if tool == "write_assessment":
        groups = ("gap_analysis", "application", "one_step_further", "synthesis")
        return {group: [_question(m, group)] for group, m in zip(groups, _spread(found, 4) * 4, strict=False)}
    if tool == "write_overview":
        return {"summary": summary, "key_concepts": [_concept(middle)], "connections": [connection]}
    mistake = {
        "mistake": f"Thinking {middle.words} is trivial.",
        "correction": "The video shows why it is not.",
    }
    example = {
        "second": middle.second,
        "problem": f"Work through {middle.words}",
        "steps": ["Apply it."],
        "result": "The speaker's result.",
    }
    if tool == "write_section_notes":
        return {
            "summary": f"This section covers {found[0].words}.",
            "key_concepts": [_concept(found[0])],
            "outline": _outline(found, 3),
            "worked_examples": [],
            "misconceptions": [],
            "review_questions": [_question(middle, "Review")],
        }
    return {
        "summary": summary,
        "key_concepts": [_concept(middle)],
        "outline": _outline(found, 12),
        "worked_examples": [example],
        "misconceptions": [mistake],
        "connections": [connection],
        "review_questions": [_question(middle, "Review")],
    }


_FIRST_REQUIRED = {
    "write_note": "outline",
    "write_section_notes": "outline",
    "write_overview": "summary",
    "write_assessment": "synthesis",
}


def _seconds(value: Any) -> list[dict[str, Any]]:
    """Every object in `value` that holds a second."""
    if isinstance(value, dict):
        found = [value] if "second" in value else []
        return found + [inner for item in value.values() for inner in _seconds(item)]
    if isinstance(value, list):
        return [inner for item in value for inner in _seconds(item)]
    return []


def broken(tool: str, data: dict[str, Any], how: str, end: int) -> dict[str, Any]:
    """`data` broken in the way `how` names (one of `BREAKS`, except the ones that change the message;
    an empty `how` breaks nothing)."""
    if how and how not in BREAKS:
        raise ValueError(f"no such way to break an answer: {how!r} (one of {', '.join(BREAKS)})")
    if how == "missing_section":
        data.pop(_FIRST_REQUIRED[tool])
    elif how == "all_past_end":
        for item in _seconds(data):
            item["second"] = end + 600
    elif how == "past_end":  # the last outline point (else the last entry with a second) after the end
        timed = _seconds(data.get("outline") or data)
        timed[-1]["second"] = end + 600
    elif how == "unordered" and data.get("outline"):  # the outline's part split in two, the halves swapped
        item = data["outline"][0]
        half = len(item["points"]) // 2
        later = {
            "second": item["points"][half]["second"],
            "title": "Later ideas",
            "points": item["points"][half:],
        }
        data["outline"] = [later, {**item, "points": item["points"][:half]}]
    return data
