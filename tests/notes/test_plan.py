"""Tests for studybuddy.note_plan: the calls of a note, long videos in sections merged by structure, cut-off
sections, and a plan's progress saved as JSON and taken up again (as a batch run does after a stop)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from studybuddy.errors import NotesError, NotesFatalError
from studybuddy.models import Segment, Transcript, VideoMeta
from studybuddy.notes.chunking import estimate_tokens
from studybuddy.notes.plan import DEFAULT_MAX_INPUT_TOKENS
from studybuddy.notes.prompting import SYSTEM_PROMPT
from studybuddy.store.render import render_note
from tests.fakes.anthropic_answers import transcript_lines
from tests.fakes.anthropic_server import FakeAnthropic, RecordedRequest
from tests.fakes.engines import make_engine
from tests.notecheck import check_note

VIDEO_ID = "dQw4w9WgXcQ"


def lecture(hours: float, step: float = 3.0) -> Transcript:
    """A lecture with a caption every `step` seconds, about 150 words a minute."""
    count = int(hours * 3600 / step)
    segments = tuple(
        Segment(index * step, step, f"point {index} about vectors and matrices at second {index * step:g}.")
        for index in range(count)
    )
    return Transcript(VIDEO_ID, "English", "en", False, segments)


def tool_of(request: RecordedRequest) -> str:
    assert request.body is not None
    return str(request.body["tool_choice"]["name"])


def material_of(request: RecordedRequest) -> str:
    assert request.body is not None
    return str(request.body["system"][1]["text"])


def test_a_short_video_is_a_note_and_an_assessment(fake_anthropic: FakeAnthropic) -> None:
    engine = make_engine(fake_anthropic, assessment=True)
    plan = engine.plan(VideoMeta(VIDEO_ID, duration=600.0), lecture(0.1))
    assert plan.pending() == ["note", "assessment"]
    assert make_engine(fake_anthropic, assessment=False).plan(
        VideoMeta(VIDEO_ID), lecture(0.1)
    ).pending() == ["note"]


@pytest.mark.parametrize(("hours", "budget"), [(3, 20_000), (10, DEFAULT_MAX_INPUT_TOKENS)])
def test_a_long_video_is_written_in_sections_then_merged_by_structure(
    fake_anthropic: FakeAnthropic, tmp_path: Path, hours: float, budget: int
) -> None:
    transcript = lecture(hours)
    meta = VideoMeta(VIDEO_ID, title="A long lecture", duration=transcript.end)
    body = make_engine(fake_anthropic, assessment=True, max_input_tokens=budget).generate(meta, transcript)

    requests = fake_anthropic.message_requests()
    tools = [tool_of(request) for request in requests]
    sections = [r for r, tool in zip(requests, tools, strict=True) if tool == "write_section_notes"]
    assert len(sections) >= 2 and tools[len(sections) :] == ["write_overview", "write_assessment"]
    # Every caption is sent once, in order, in lines that start at a caption; no call is over the budget.
    lines = [m for request in sections for m in transcript_lines(material_of(request))]
    assert [m.second for m in lines] == sorted({m.second for m in lines})
    assert " ".join(m.text for m in lines) == " ".join(s.text for s in transcript.segments)
    for request in sections:
        assert request.body is not None
        sent = SYSTEM_PROMPT + material_of(request) + json.dumps(request.body["tools"])
        assert estimate_tokens(sent) <= budget
    # The overview and the assessment read the same merged section notes, the second from the cache.
    overview, assessment = requests[len(sections) :]
    assert material_of(overview) == material_of(assessment)
    ranges = re.findall(r'<section from="(\d+)s" to="(\d+)s">', material_of(overview))
    assert len(ranges) == len(sections) and ranges[0][0] == "0" and int(ranges[-1][1]) == int(transcript.end)
    assert assessment.response["usage"]["cache_read_input_tokens"] > 0
    # The outline is every section's outline with its exact seconds; summary and concepts from the overview.
    section_points = [
        p["second"]
        for r in sections
        for item in r.response["content"][0]["input"]["outline"]
        for p in item["points"]
    ]
    assert [p.second for item in body.note.outline for p in item.points] == section_points
    assert body.note.summary == overview.response["content"][0]["input"]["summary"]
    assert body.usage.input_tokens == sum(r.response["usage"]["input_tokens"] for r in requests)
    path = tmp_path / "long.md"
    path.write_text(render_note(meta, transcript, body, prompt_version=body.prompt_version))
    check_note(path)


def sections_sent(fake: FakeAnthropic) -> list[list[str]]:
    """The transcript lines sent in each section call so far."""
    sent = [r for r in fake.message_requests() if tool_of(r) == "write_section_notes"]
    return [[m.text for m in transcript_lines(material_of(request))] for request in sent]


def test_a_cut_off_section_is_written_again_in_pieces(fake_anthropic: FakeAnthropic) -> None:
    transcript = lecture(3)
    engine = make_engine(fake_anthropic, max_input_tokens=20_000, assessment=False)
    engine.generate(VideoMeta(VIDEO_ID), transcript)
    whole = sections_sent(fake_anthropic)
    largest = max(whole, key=len)
    assert [len(lines) for lines in whole].count(len(largest)) == 1
    fake_anthropic.requests.clear()
    fake_anthropic.max_tokens_above = len(largest) - 1  # the largest section is cut off, its pieces are not
    body = engine.generate(VideoMeta(VIDEO_ID), transcript)

    stops = [r.response["stop_reason"] for r in fake_anthropic.message_requests()]
    assert stops.count("max_tokens") == 1 and stops[-1] == "tool_use"
    again = sections_sent(fake_anthropic)
    cut = again.index(largest)
    pieces = again[cut + 1 : cut + 1 + len(again) - len(whole)]
    assert len(pieces) >= 2  # the same captions again, in smaller calls
    assert " ".join(text for piece in pieces for text in piece) == " ".join(largest)
    assert body.note.outline


def test_a_section_cut_off_even_when_smaller_fails_the_video_after_one_repair(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.max_tokens_above = 1
    engine = make_engine(fake_anthropic, max_input_tokens=20_000, max_retries=0)
    with pytest.raises(
        NotesError,
        match=r"the notes on 00:00-.* failed the checks again after a repair: the answer was cut off",
    ) as caught:
        engine.generate(VideoMeta(VIDEO_ID), lecture(3))
    assert not isinstance(caught.value, NotesFatalError)
    sent = sections_sent(fake_anthropic)
    assert len(sent[1]) < len(sent[0])  # split, then its first piece
    assert len(fake_anthropic.message_requests()) == 3  # the section, its first half, that half's repair


def test_a_plan_saved_as_json_goes_on_where_it_stopped(fake_anthropic: FakeAnthropic) -> None:
    transcript = lecture(3)
    meta = VideoMeta(VIDEO_ID, duration=transcript.end)
    engine = make_engine(fake_anthropic, max_input_tokens=20_000)
    plan = engine.plan(meta, transcript)
    first = plan.pending()[0]
    plan.feed(first, engine.send(plan.params(first), VIDEO_ID))
    saved = json.loads(json.dumps(plan.state))

    resumed = engine.plan(meta, transcript, saved)
    assert resumed.pending() == plan.pending() and first not in resumed.pending()
    resumed.feed(first, engine.send(plan.params(first), VIDEO_ID))  # an answer it no longer waits for
    while keys := resumed.pending():
        resumed.feed(keys[0], engine.send(resumed.params(keys[0]), VIDEO_ID))
    assert resumed.result().note.outline
    first_answer, _stale, *rest = fake_anthropic.message_requests()
    assert resumed.usage.input_tokens == sum(
        r.response["usage"]["input_tokens"] for r in [first_answer, *rest]
    )
    with pytest.raises(NotesError, match="from another version"):
        engine.plan(meta, transcript, {**saved, "version": 0})
