"""Tests for studybuddy.note_prompts: the material, the request layout for caching, the repair requests."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from studybuddy.models import Chapter, Segment, Transcript, VideoMeta
from studybuddy.notes.chunking import estimate_tokens
from studybuddy.notes.prompting import (
    ASSESSMENT_TASK,
    LINE_S,
    NOTE_TASK,
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    TASKS,
    build_material,
    estimate_request,
    probe_params,
    request_params,
    transcript_lines,
    with_repair,
)
from studybuddy.schema import Tool

META = VideoMeta(
    "dQw4w9WgXcQ",
    title="Linear algebra",
    channel="Math",
    duration=130.0,
    chapters=(Chapter(0, "Intro"), Chapter(65, "Eigenvectors")),
)


def transcript(*segments: tuple[float, float, str]) -> Transcript:
    return Transcript("dQw4w9WgXcQ", "English", "en", True, tuple(Segment(*s) for s in segments))


def test_captions_join_into_lines_of_about_fifteen_seconds() -> None:
    captions = transcript(*((i * 3.0, 3.0, f"word{i}") for i in range(10)))
    assert transcript_lines(captions) == [
        (0.0, "word0 word1 word2 word3 word4"),
        (15.0, "word5 word6 word7 word8 word9"),
    ]
    assert LINE_S == 15.0


def test_a_line_ends_at_a_pause_or_a_sentence_once_half_full_and_skips_sounds() -> None:
    captions = transcript(
        (0.0, 4.0, "First sentence goes on"),
        (4.0, 4.0, "and ends here."),
        (8.0, 2.0, "Second one."),
        (10.0, 2.0, "[Music]"),
        (14.5, 2.0, "after a pause"),
    )
    assert transcript_lines(captions) == [
        (0.0, "First sentence goes on and ends here."),
        (8.0, "Second one."),
        (14.5, "after a pause"),
    ]


@given(st.lists(st.tuples(st.floats(0, 5000), st.floats(0, 20), st.text(max_size=20)), max_size=40))
def test_every_line_starts_at_a_caption_with_speech(segments: list[tuple[float, float, str]]) -> None:
    captions = transcript(*segments)
    lines = transcript_lines(captions)
    spoken = {s.start for s in captions.segments if re.search(r"\w", re.sub(r"\[[^\]]*\]|[♪♫]", "", s.text))}
    assert {start for start, _ in lines} <= spoken
    assert [start for start, _ in lines] == sorted(start for start, _ in lines)


def test_the_material_gives_the_video_the_language_and_the_lines() -> None:
    captions = transcript((0.0, 4.0, "welcome"), (65.9, 4.0, "eigen  vectors\nkeep direction"))
    material = build_material(META, captions, "de")
    assert "title: Linear algebra\nvideo_id: dQw4w9WgXcQ\nchannel: Math\nduration: 02:10" in material
    assert "notes_language: de" in material
    assert "chapters:\n[0s] Intro\n[65s] Eigenvectors" in material
    assert (
        '<transcript language="English" captions="automatic">\n[0s] welcome\n[65s] eigen vectors' in material
    )
    section = build_material(META, captions, "en", section=(0.0, 69.9))
    assert '<transcript language="English" captions="automatic" from="0s" to="69s">' in section


def test_calls_that_share_material_differ_only_in_the_forced_tool_and_the_task() -> None:
    common = {
        "model": "m",
        "max_tokens": 100,
        "tools": [Tool.NOTE, Tool.ASSESSMENT],
        "material": "M",
        "cache": True,
    }
    note = request_params(tool=Tool.NOTE, task=NOTE_TASK, **common)  # type: ignore[arg-type]
    assessment = request_params(tool=Tool.ASSESSMENT, task=ASSESSMENT_TASK, **common)  # type: ignore[arg-type]
    assert note["tools"] == assessment["tools"] and [t["name"] for t in note["tools"]] == [
        "write_note",
        "write_assessment",
    ]
    assert (
        note["system"]
        == assessment["system"]
        == [
            {"type": "text", "text": SYSTEM_PROMPT},
            {"type": "text", "text": "M", "cache_control": {"type": "ephemeral"}},
        ]
    )
    assert note["tool_choice"] == {"type": "tool", "name": "write_note", "disable_parallel_tool_use": True}
    assert assessment["messages"] == [{"role": "user", "content": ASSESSMENT_TASK}]
    uncached = request_params(tool=Tool.NOTE, task=NOTE_TASK, **{**common, "cache": False})  # type: ignore[arg-type]
    assert "cache_control" not in uncached["system"][1]


def test_a_repair_sends_the_answer_back_with_what_was_wrong() -> None:
    params = request_params(
        model="m", max_tokens=100, tool=Tool.NOTE, tools=[Tool.NOTE], material="M", task="T", cache=False
    )
    call = {"type": "tool_use", "id": "toolu_1", "name": "write_note", "input": {"summary": "x"}}
    repaired = with_repair(params, [call], "wrong", cut_off=False)
    assert repaired["messages"] == [
        {"role": "user", "content": "T"},
        {"role": "assistant", "content": [call]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True, "content": "wrong"}
            ],
        },
    ]
    assert repaired["tools"] == params["tools"] and repaired["system"] == params["system"]
    prose = with_repair(params, [{"type": "text", "text": "Notes!"}], "call it", cut_off=False)
    assert prose["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "text", "text": "Notes!"}]},
        {"role": "user", "content": "call it"},
    ]
    cut = with_repair(params, [], "shorter", cut_off=True)
    assert cut["messages"] == [{"role": "user", "content": "T\n\nshorter"}] and cut["max_tokens"] == 200
    assert params["messages"] == [{"role": "user", "content": "T"}]  # the original is left as it was


def test_the_prompts_version_the_model_check_and_the_estimate() -> None:
    assert re.fullmatch(r"notes-[0-9a-f]{12}", PROMPT_VERSION)
    assert all(f"`{tool.value}`" in TASKS[tool] for tool in Tool)
    assert "`[Ns]`" in SYSTEM_PROMPT and "notes_language" in SYSTEM_PROMPT
    probe = probe_params("m")
    assert probe["max_tokens"] == 1 and probe["tool_choice"] == {"type": "tool", "name": "ready"}
    assert estimate_request("M", [Tool.NOTE], "T") > estimate_tokens(SYSTEM_PROMPT)
