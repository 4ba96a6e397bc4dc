"""Tests for studybuddy.note_schema: the tools' schemas, and a tool call's input read into the structure."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from studybuddy.schema import (
    ASSESSMENT_GROUPS,
    TOOL_PARTS,
    Assessment,
    Concept,
    OutlineItem,
    Point,
    Question,
    StudyNote,
    Tool,
    fold_outline,
    note_from_json,
    parse_answer,
    tool_definition,
)
from studybuddy.store.render import note_json


def full_answer() -> dict[str, Any]:
    return {
        "summary": "  Vectors   add\ntip to tail. ",
        "key_concepts": [{"term": "vector", "definition": "An arrow.", "second": 12}],
        "outline": [
            {"second": 0, "title": "Intro", "points": [{"second": 4, "text": "Why vectors."}]},
            {"second": 60.0, "title": "Adding", "points": []},
        ],
        "worked_examples": [
            {"second": 90, "problem": "Add (1,2)", "steps": ["Add x", "Add y"], "result": "(3,5)"}
        ],
        "misconceptions": [{"mistake": "Order matters.", "correction": "Addition commutes."}],
        "connections": [{"topic": "Matrices", "relation": "Built from vectors."}],
        "review_questions": [{"question": "Why?", "answer": "Because.", "second": "12"}],
    }


def test_every_tool_asks_for_its_parts_and_requires_them() -> None:
    for tool in Tool:
        definition = tool_definition(tool)
        schema = definition["input_schema"]
        assert isinstance(schema, dict)
        assert definition["name"] == tool.value
        assert list(schema["properties"]) == list(TOOL_PARTS[tool]) == schema["required"]
    assert TOOL_PARTS[Tool.ASSESSMENT] == ASSESSMENT_GROUPS
    assert set(TOOL_PARTS[Tool.OVERVIEW]) == {"summary", "key_concepts", "connections"}
    outline = tool_definition(Tool.NOTE)["input_schema"]["properties"]["outline"]  # type: ignore[index]
    assert outline["items"]["required"] == ["second", "title", "points"]


def test_a_full_answer_reads_into_the_structure() -> None:
    note, problems = parse_answer(Tool.NOTE, full_answer())
    assert problems == []
    assert note.summary == "Vectors add tip to tail."
    assert note.key_concepts == (Concept("vector", "An arrow.", 12),)
    assert note.outline == (OutlineItem(0, "Intro", (Point(4, "Why vectors."),)), OutlineItem(60, "Adding"))
    assert note.worked_examples[0].steps == ("Add x", "Add y")
    assert note.review_questions == (Question("Why?", "Because.", 12),)
    assert note.assessment is None


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda a: a.pop("outline"), "the answer has no `outline` (required)"),
        (lambda a: a.update(summary=""), "summary is not a non-empty text"),
        (lambda a: a.update(key_concepts="vector"), "key_concepts is not a list"),
        (lambda a: a["key_concepts"].append("vector"), "key_concepts[1] is not an object"),
        (
            lambda a: a["outline"][1].update(second="soon"),
            "outline[1].second is not a number of seconds: 'soon'",
        ),
        (
            lambda a: a["outline"][0]["points"][0].update(second=-3),
            "outline[0].points[0].second is not a number",
        ),
        (
            lambda a: a["review_questions"][0].pop("answer"),
            "review_questions[0].answer is not a non-empty text",
        ),
        (
            lambda a: a["worked_examples"][0].update(steps=[1]),
            "worked_examples[0].steps[0] is not a non-empty",
        ),
    ],
)
def test_what_does_not_fit_the_schema_is_named(change: Any, problem: str) -> None:
    answer = full_answer()
    change(answer)
    _, problems = parse_answer(Tool.NOTE, answer)
    assert len(problems) == 1 and problems[0].startswith(problem)


def test_an_assessment_answer_and_a_non_object() -> None:
    groups = {g: [{"question": f"{g}?", "answer": "Yes.", "second": 3}] for g in ASSESSMENT_GROUPS}
    note, problems = parse_answer(Tool.ASSESSMENT, groups)
    assert problems == [] and note.assessment is not None
    assert [name for name, questions in note.assessment.groups() if questions] == list(ASSESSMENT_GROUPS)
    assert parse_answer(Tool.NOTE, ["not", "an", "object"])[1] == ["the input of write_note is not an object"]
    section, _ = parse_answer(Tool.SECTION, full_answer())
    assert section.connections == ()  # not a section's part: ignored


def test_the_json_form_reads_back_as_the_same_structure() -> None:
    note, _ = parse_answer(Tool.NOTE, full_answer())
    questions = (Question("Q?", "A.", 4),)
    whole = replace(note, assessment=Assessment(questions, questions, questions, questions))
    assert note_from_json(note_json(whole)) == whole
    assert note_from_json(note_json(StudyNote(summary="Only this."))) == StudyNote(summary="Only this.")
    with pytest.raises(ValueError, match="outline is not a list"):
        note_from_json({"outline": "none"})


def test_folding_keeps_outline_seconds_increasing() -> None:
    items = [
        OutlineItem(10, "A", (Point(10, "a"),)),
        OutlineItem(10, "B", (Point(11, "b"),)),
        OutlineItem(30, "C"),
    ]
    assert fold_outline(items) == (
        OutlineItem(10, "A", (Point(10, "a"), Point(11, "b"))),
        OutlineItem(30, "C"),
    )
