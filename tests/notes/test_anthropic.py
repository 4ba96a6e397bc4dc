"""The Anthropic engine with the real SDK against the fake Messages API on loopback: structured answers
through a forced tool, checked against the transcript, repaired once, and what it costs."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from studybuddy.errors import ConfigError, NotesError, NotesFatalError
from studybuddy.models import Chapter, NoteBody, Segment, Transcript, Usage, VideoMeta
from studybuddy.notes.anthropic import AnthropicEngine
from studybuddy.notes.prompting import (
    ASSESSMENT_TASK,
    NOTE_TASK,
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    build_material,
)
from studybuddy.notes.ratelimit import RequestLimiter
from studybuddy.store.render import render_note
from tests.fakes.anthropic_server import API_KEY, MODEL, FakeAnthropic, RecordedRequest
from tests.fakes.engines import make_engine
from tests.notecheck import check_note

VIDEO_ID = "dQw4w9WgXcQ"
META = VideoMeta(
    VIDEO_ID, title="Linear algebra", channel="Math", duration=130.0, chapters=(Chapter(0, "Intro"),)
)
TRANSCRIPT = Transcript(
    VIDEO_ID,
    "English",
    "en",
    False,
    tuple(Segment(i * 4.0, 4.0, f"Sentence {i} about vectors and their directions.") for i in range(30)),
)
STARTS = {int(segment.start) for segment in TRANSCRIPT.segments}


@pytest.fixture
def engine(fake_anthropic: FakeAnthropic) -> Iterator[AnthropicEngine]:
    """An engine (one call a video) reaching the fake through ANTHROPIC_BASE_URL, base_url left to the SDK."""
    made = AnthropicEngine(
        api_key=API_KEY, model=MODEL, limiter=RequestLimiter(4, 1000), max_retries=2, assessment=False
    )
    yield made
    made.close()


def body_of(request: RecordedRequest) -> dict[str, Any]:
    assert request.body is not None
    return request.body


def every_second(body: NoteBody) -> list[int]:
    note = body.note
    seconds = [c.second for c in note.key_concepts] + [q.second for q in note.review_questions]
    seconds += [item.second for item in note.outline] + [p.second for i in note.outline for p in i.points]
    return seconds


def test_the_note_is_asked_for_with_a_forced_tool_and_read_from_its_input(
    fake_anthropic: FakeAnthropic, engine: AnthropicEngine, tmp_path: Path
) -> None:
    body = engine.generate(META, TRANSCRIPT)

    [request] = fake_anthropic.message_requests()
    sent = body_of(request)
    assert request.headers["anthropic-version"]
    assert sent["model"] == MODEL and sent["max_tokens"] == 8000
    assert [tool["name"] for tool in sent["tools"]] == ["write_note"]
    assert sent["tool_choice"] == {"type": "tool", "name": "write_note", "disable_parallel_tool_use": True}
    assert sent["system"] == [
        {"type": "text", "text": SYSTEM_PROMPT},
        {"type": "text", "text": build_material(META, TRANSCRIPT, "en")},
    ]
    assert sent["messages"] == [{"role": "user", "content": NOTE_TASK}]
    answer = request.response
    assert answer["stop_reason"] == "tool_use" and answer["content"][0]["type"] == "tool_use"
    assert body.note.summary == answer["content"][0]["input"]["summary"]
    assert body.model == MODEL and body.prompt_version == PROMPT_VERSION and body.language == "en"
    assert body.usage == Usage(answer["usage"]["input_tokens"], answer["usage"]["output_tokens"])
    assert set(every_second(body)) <= STARTS
    path = tmp_path / "note.md"
    path.write_text(render_note(META, TRANSCRIPT, body, prompt_version=body.prompt_version))
    assert check_note(path)["prompt_version"] == PROMPT_VERSION


def test_the_assessment_reads_the_cached_transcript(fake_anthropic: FakeAnthropic) -> None:
    body = make_engine(fake_anthropic, assessment=True).generate(META, TRANSCRIPT)

    note_call, assessment_call = (body_of(r) for r in fake_anthropic.message_requests())
    assert note_call["tools"] == assessment_call["tools"]  # the cached prefix starts with the tools
    assert note_call["system"] == assessment_call["system"]
    assert note_call["system"][1]["cache_control"] == {"type": "ephemeral"}
    assert assessment_call["tool_choice"]["name"] == "write_assessment"
    assert assessment_call["messages"] == [{"role": "user", "content": ASSESSMENT_TASK}]
    first, second = (r.response["usage"] for r in fake_anthropic.message_requests())
    assert first["cache_creation_input_tokens"] > 0 and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert body.usage.cache_read_tokens == second["cache_read_input_tokens"]
    assert body.usage.cache_write_tokens == first["cache_creation_input_tokens"]
    assert body.note.assessment is not None
    assert all(questions for _, questions in body.note.assessment.groups())


def test_the_notes_language_is_asked_for_and_recorded(fake_anthropic: FakeAnthropic) -> None:
    body = make_engine(fake_anthropic, notes_lang="de").generate(META, TRANSCRIPT)
    [request] = fake_anthropic.message_requests()
    assert "notes_language: de" in body_of(request)["system"][1]["text"]
    assert body.language == "de"


# --- answers that break the rules -----------------------------------------------------------------------


def test_a_second_past_the_end_is_dropped_and_counted_without_a_repair(
    fake_anthropic: FakeAnthropic, engine: AnthropicEngine, caplog: pytest.LogCaptureFixture
) -> None:
    fake_anthropic.breaks = ["past_end"]
    with caplog.at_level(logging.INFO, logger="studybuddy.notes.plan"):
        body = engine.generate(META, TRANSCRIPT)
    assert len(fake_anthropic.message_requests()) == 1
    points = fake_anthropic.message_requests()[0].response["content"][0]["input"]["outline"][0]["points"]
    assert points[-1]["second"] == 130 + 600
    assert len(body.note.outline[0].points) == len(points) - 1
    assert max(every_second(body)) <= 130
    assert "left out 1 item(s) that point at no moment of the video" in caplog.text
    assert "730 s is past the end (02:10)" in caplog.text


@pytest.mark.parametrize(
    ("how", "problem"),
    [
        ("missing_section", "the answer has no `outline` (required)"),
        ("unordered", "outline seconds must increase"),
        ("all_past_end", "are past the end or at no caption"),
    ],
)
def test_an_answer_that_fails_the_checks_gets_one_repair_listing_what_was_wrong(
    fake_anthropic: FakeAnthropic, engine: AnthropicEngine, how: str, problem: str
) -> None:
    fake_anthropic.breaks = [how]
    body = engine.generate(META, TRANSCRIPT)

    first, repair = fake_anthropic.message_requests()
    sent = body_of(repair)
    broken_call = first.response["content"][0]
    assert sent["tools"] == body_of(first)["tools"] and sent["tool_choice"] == body_of(first)["tool_choice"]
    assert sent["messages"][0] == {"role": "user", "content": NOTE_TASK}
    assert sent["messages"][1] == {"role": "assistant", "content": [broken_call]}
    [result] = sent["messages"][2]["content"]
    assert (
        result["type"] == "tool_result" and result["tool_use_id"] == broken_call["id"] and result["is_error"]
    )
    assert problem in result["content"]
    assert body.note.outline and set(every_second(body)) <= STARTS


@pytest.mark.parametrize(
    ("how", "turn"),
    [
        ("prose", "the answer is text instead of a call of write_note"),
        ("refusal", "the model refused to answer"),
    ],
)
def test_text_instead_of_the_tool_gets_one_repair(
    fake_anthropic: FakeAnthropic, engine: AnthropicEngine, how: str, turn: str
) -> None:
    fake_anthropic.breaks = [how]
    body = engine.generate(META, TRANSCRIPT)
    first, repair = fake_anthropic.message_requests()
    messages = body_of(repair)["messages"]
    assert messages[1] == {"role": "assistant", "content": first.response["content"]}
    assert turn in messages[2]["content"]
    assert body.note.summary


def test_an_answer_cut_off_inside_the_tool_input_is_asked_again_shorter(
    fake_anthropic: FakeAnthropic, engine: AnthropicEngine
) -> None:
    fake_anthropic.breaks = ["max_tokens"]
    body = engine.generate(META, TRANSCRIPT)
    first, repair = fake_anthropic.message_requests()
    assert first.response["stop_reason"] == "max_tokens"
    assert list(first.response["content"][0]["input"]) == ["summary"]  # the input stopped after one part
    sent = body_of(repair)
    assert sent["max_tokens"] == 16000
    assert (
        len(sent["messages"]) == 1
        and "cut off at the limit of 8000 output tokens" in sent["messages"][0]["content"]
    )
    assert body.note.outline


@pytest.mark.parametrize("how", ["missing_section", "prose", "refusal", "max_tokens", "all_past_end"])
def test_a_repair_that_fails_too_fails_the_video_with_the_reasons(
    fake_anthropic: FakeAnthropic, engine: AnthropicEngine, how: str
) -> None:
    fake_anthropic.breaks = [how, how]
    with pytest.raises(
        NotesError, match=f"^{VIDEO_ID}: the note failed the checks again after a repair: "
    ) as caught:
        engine.generate(META, TRANSCRIPT)
    assert not isinstance(caught.value, NotesFatalError)
    assert "\n" not in str(caught.value)
    assert len(fake_anthropic.message_requests()) == 2


def test_a_broken_assessment_is_repaired_on_its_own(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.breaks = ["", "missing_section"]
    body = make_engine(fake_anthropic, assessment=True).generate(META, TRANSCRIPT)
    tools = [body_of(r)["tool_choice"]["name"] for r in fake_anthropic.message_requests()]
    assert tools == ["write_note", "write_assessment", "write_assessment"]
    assert "the answer has no `synthesis`" in str(
        body_of(fake_anthropic.message_requests()[2])["messages"][2]
    )
    usage = [r.response["usage"]["cache_read_input_tokens"] for r in fake_anthropic.message_requests()]
    assert usage[1] > 0 and usage[2] > 0  # the repair reads the cached transcript too
    assert body.note.assessment is not None and body.note.assessment.synthesis


def test_a_context_window_overflow_fails_at_once(
    fake_anthropic: FakeAnthropic, engine: AnthropicEngine
) -> None:
    fake_anthropic.breaks = ["context_window"]
    with pytest.raises(NotesError, match="does not fit the model's context window"):
        engine.generate(META, TRANSCRIPT)
    assert len(fake_anthropic.message_requests()) == 1


# --- the check before a run -----------------------------------------------------------------------------


def test_the_check_is_one_call_of_one_token_with_a_forced_tool(
    fake_anthropic: FakeAnthropic, engine: AnthropicEngine
) -> None:
    engine.check()
    [request] = fake_anthropic.message_requests()
    sent = body_of(request)
    assert sent["max_tokens"] == 1 and sent["tool_choice"]["type"] == "tool" and sent["tools"]
    assert request.response["usage"]["output_tokens"] == 1


def test_a_model_without_tool_use_is_a_clear_fatal_error(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.models.add("claude-old-1")
    fake_anthropic.models_without_tools.add("claude-old-1")
    engine = make_engine(fake_anthropic, model="claude-old-1")
    with pytest.raises(NotesFatalError, match=r"^model 'claude-old-1' cannot write structured notes: .*400"):
        engine.check()


@pytest.mark.parametrize("refuse", ["wrong key", "revoked key"])
def test_refused_key_is_fatal_and_never_shown(
    fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture, refuse: str
) -> None:
    caplog.set_level(logging.DEBUG)
    key = "sk-ant-wrong-key-42" if refuse == "wrong key" else API_KEY
    fake_anthropic.refuse_keys = refuse == "revoked key"
    engine = make_engine(fake_anthropic, api_key=key)
    with pytest.raises(NotesFatalError, match="Anthropic refused the API key") as caught:
        engine.generate(META, TRANSCRIPT)
    with pytest.raises(NotesFatalError, match="Anthropic refused the API key"):
        engine.check()
    assert len(fake_anthropic.requests) == 2  # a 401 is not retried
    for shown in (str(caught.value), repr(engine), caplog.text):
        assert key not in shown


def test_unknown_model_is_fatal(fake_anthropic: FakeAnthropic) -> None:
    engine = make_engine(fake_anthropic, model="claude-nope")
    with pytest.raises(NotesFatalError, match="model 'claude-nope' does not exist"):
        engine.check()
    with pytest.raises(NotesFatalError, match="model 'claude-nope' does not exist"):
        engine.generate(META, TRANSCRIPT)


def unused_loopback_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_check_lets_the_run_go_on_when_the_api_cannot_be_reached(caplog: pytest.LogCaptureFixture) -> None:
    engine = AnthropicEngine(
        api_key=API_KEY,
        model=MODEL,
        limiter=RequestLimiter(1, 10),
        max_retries=0,
        base_url=unused_loopback_url(),
    )
    with caplog.at_level(logging.WARNING, logger="studybuddy.notes.anthropic"):
        engine.check()
    assert "cannot reach the Anthropic API" in caplog.text
    with pytest.raises(NotesError, match=f"^{VIDEO_ID}: cannot reach the Anthropic API") as caught:
        engine.generate(META, TRANSCRIPT)
    assert not isinstance(caught.value, NotesFatalError)


# --- limits and failures of the API ---------------------------------------------------------------------


def test_rate_limit_is_retried_by_the_sdk(fake_anthropic: FakeAnthropic, engine: AnthropicEngine) -> None:
    fake_anthropic.fail_next(429, times=1, retry_after="0.01")
    body = engine.generate(META, TRANSCRIPT)
    assert [r.status for r in fake_anthropic.message_requests()] == [429, 200]
    assert body.note.summary


def test_overload_that_outlasts_the_retries_fails_the_video_only(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fail_next(529, times=5, retry_after="0.01")
    engine = make_engine(fake_anthropic, max_retries=3)
    with pytest.raises(
        NotesError, match=f"^{VIDEO_ID}: Anthropic is overloaded \\(529\\) after 3 retries$"
    ) as caught:
        engine.generate(META, TRANSCRIPT)
    assert not isinstance(caught.value, NotesFatalError)
    assert [r.status for r in fake_anthropic.message_requests()] == [529] * 4


def test_one_engine_serves_many_threads_within_the_limit(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.latency = 0.05
    engine = make_engine(fake_anthropic, limiter=RequestLimiter(max_concurrent=2, per_minute=1000))
    results: list[NoteBody] = []
    threads = [
        threading.Thread(target=lambda: results.append(engine.generate(META, TRANSCRIPT))) for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    engine.close()
    assert len(results) == 6
    assert fake_anthropic.max_in_flight == 2


def test_engine_waits_for_the_per_minute_budget(fake_anthropic: FakeAnthropic) -> None:
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    limiter = RequestLimiter(max_concurrent=1, per_minute=1, clock=lambda: now[0], sleep=sleep)
    engine = make_engine(fake_anthropic, limiter=limiter)
    engine.generate(META, TRANSCRIPT)
    engine.generate(META, TRANSCRIPT)
    assert sleeps == [60.0]


def test_an_empty_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no Anthropic API key"):
        AnthropicEngine(api_key="", model=MODEL, limiter=RequestLimiter(1, 1))


@pytest.mark.parametrize(
    "texts",
    [(), ("",), ("[Music]", "[Applause]"), ("♪ ♪", "[Music] ♪", "  ")],
    ids=["empty", "blank", "music", "notes"],
)
def test_a_transcript_without_words_is_a_notes_error_without_a_call(
    fake_anthropic: FakeAnthropic, engine: AnthropicEngine, texts: tuple[str, ...]
) -> None:
    segments = tuple(Segment(index * 5.0, 5.0, text) for index, text in enumerate(texts))
    transcript = Transcript(VIDEO_ID, "English", "en", True, segments)
    with pytest.raises(NotesError, match=f"^{VIDEO_ID}: the transcript has no spoken words"):
        engine.generate(META, transcript)
    assert fake_anthropic.message_requests() == []
