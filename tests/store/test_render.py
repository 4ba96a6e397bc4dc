"""Tests for studybuddy.note_render: the one renderer of a note's structure."""

from __future__ import annotations

import re

import pytest

from studybuddy.schema import (
    Assessment,
    Concept,
    Connection,
    Example,
    Misconception,
    OutlineItem,
    Point,
    Question,
    StudyNote,
)
from studybuddy.store.render import format_clock, note_json, render_body, timestamp_link

VIDEO = "dQw4w9WgXcQ"
NOTE = StudyNote(
    summary="Vectors add tip to tail.",
    key_concepts=(Concept("vector", "An arrow with a length and a direction.", 12),),
    outline=(
        OutlineItem(0, "Intro", (Point(4, "Why vectors matter."),)),
        OutlineItem(65, "Adding", (Point(70, "Tip to tail."), Point(3725, "The end."))),
    ),
    worked_examples=(Example(90, "Add (1,2) and (2,3)", ("Add the x parts.", "Add the y parts."), "(3,5)"),),
    misconceptions=(Misconception("Order matters.", "Vector addition commutes."),),
    connections=(Connection("Matrices", "They act on vectors."),),
    review_questions=(Question("Why tip to tail?", "It adds displacements.", 70),),
    assessment=Assessment(
        gap_analysis=(Question("What is missed?", "The direction.", 12),),
        synthesis=(Question("How do they connect?", "Through addition.", 65),),
    ),
)


@pytest.mark.parametrize(
    ("seconds", "clock"),
    [
        (0, "00:00"),
        (4.9, "00:04"),
        (65.9, "01:05"),
        (3599.99, "59:59"),
        (3600, "1:00:00"),
        (3725.4, "1:02:05"),
    ],
)
def test_format_clock(seconds: float, clock: str) -> None:
    assert format_clock(seconds) == clock


def test_timestamp_link_rounds_down_to_whole_seconds() -> None:
    assert timestamp_link(VIDEO, 65.9) == f"https://youtu.be/{VIDEO}?t=65"
    assert timestamp_link(VIDEO, -3) == f"https://youtu.be/{VIDEO}?t=0"


def test_the_sections_come_in_order_with_links_and_folded_answers() -> None:
    body = render_body(NOTE, VIDEO)
    headings = re.findall(r"^##+ .+$", body, re.M)
    assert [h for h in headings if h.startswith("## ")] == [
        "## Summary",
        "## Key concepts",
        "## Outline",
        "## Worked examples",
        "## Common misconceptions",
        "## Connections",
        "## Review questions",
        "## Assessment",
    ]
    assert (
        f"- **vector**: An arrow with a length and a direction. ([00:12](https://youtu.be/{VIDEO}?t=12))"
        in body
    )
    assert f"### [01:05](https://youtu.be/{VIDEO}?t=65) Adding" in body
    assert f"- [1:02:05](https://youtu.be/{VIDEO}?t=3725) The end." in body
    assert "1. Add the x parts.\n2. Add the y parts.\n\n**Result:** (3,5)" in body
    assert (
        "1. Why tip to tail?\n> [!question]- Answer\n"
        f"> It adds displacements. ([01:10](https://youtu.be/{VIDEO}?t=70))"
    ) in body
    assert "### Gap analysis" in body and "### Synthesis" in body
    assert "### Application" not in body  # an empty group is left out
    assert body.endswith(")\n")


def test_empty_sections_are_left_out() -> None:
    body = render_body(StudyNote(summary="Only a summary."), VIDEO)
    assert body == "## Summary\n\nOnly a summary.\n"


def test_text_cannot_break_the_notes_structure() -> None:
    note = StudyNote(summary="# Not a heading [[Not a link]]", key_concepts=(Concept("[[x]]", "> y", 1),))
    body = render_body(note, VIDEO)
    assert "\\# Not a heading \\[\\[Not a link\\]\\]" in body
    assert "- **\\[\\[x\\]\\]**: > y" in body
    assert "[[" not in body.replace("\\[\\[", "")


def test_the_json_form_is_the_same_structure() -> None:
    data = note_json(NOTE)
    assert data["outline"][1] == {
        "second": 65,
        "title": "Adding",
        "points": [{"second": 70, "text": "Tip to tail."}, {"second": 3725, "text": "The end."}],
    }
    assert data["assessment"]["application"] == []
    assert data["worked_examples"][0]["steps"] == ["Add the x parts.", "Add the y parts."]
