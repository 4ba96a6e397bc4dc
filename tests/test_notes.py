"""Tests for studybuddy.notes: rendering, the prompt, and the real Anthropic SDK against a loopback fake."""

from __future__ import annotations

import dataclasses
import logging
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from studybuddy.chunking import estimate_tokens
from studybuddy.errors import ConfigError, NotesError, NotesFatalError
from studybuddy.models import Chapter, NoteBody, Segment, Transcript, Usage, VideoMeta
from studybuddy.notes import (
    ASSESSMENT_TASK,
    COMBINE_TASK,
    DEFAULT_MAX_INPUT_TOKENS,
    NOTE_TASK,
    PROMPT_VERSION,
    SECTION_TASK,
    SYSTEM_PROMPT,
    AnthropicEngine,
    build_material,
    build_messages,
    format_clock,
    render_note,
    render_transcript,
    timestamp_link,
)
from studybuddy.ratelimit import RequestLimiter
from tests.fakes.anthropic_answers import caption_count
from tests.fakes.anthropic_server import API_KEY, MODEL, FakeAnthropic
from tests.notecheck import check_note, front_matter

VIDEO_ID = "dQw4w9WgXcQ"
META = VideoMeta(
    video_id=VIDEO_ID,
    title="Linear algebra: eigenvectors",
    channel="Math Channel",
    duration=3725.4,
    upload_date="2024-03-01",
    chapters=(Chapter(0, "Intro"), Chapter(65, "Eigenvectors")),
)
TRANSCRIPT = Transcript(
    video_id=VIDEO_ID,
    language="English",
    language_code="en",
    is_generated=True,
    segments=(
        Segment(0.0, 4.0, "welcome to the lecture"),
        Segment(4.2, 3.0, "an  eigenvector\nkeeps its direction"),
        Segment(7.5, 1.0, "   "),
        Segment(65.9, 5.0, "the eigenvalue scales it"),
        Segment(3725.0, 2.0, "thanks for watching"),
    ),
)
FRONT_MATTER = re.compile(r"\A---\n(.*?)^---\n", re.DOTALL | re.MULTILINE)


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
    assert timestamp_link(VIDEO_ID, 65.9) == f"https://youtu.be/{VIDEO_ID}?t=65"
    assert timestamp_link(VIDEO_ID, 0) == f"https://youtu.be/{VIDEO_ID}?t=0"
    assert timestamp_link(VIDEO_ID, -3) == f"https://youtu.be/{VIDEO_ID}?t=0"


def test_render_transcript_links_every_caption_with_text() -> None:
    lines = render_transcript(META, TRANSCRIPT).splitlines()
    assert lines[0] == "# Linear algebra: eigenvectors: transcript"
    captions = [line for line in lines if line.startswith("- [")]
    assert captions == [
        f"- [00:00](https://youtu.be/{VIDEO_ID}?t=0) welcome to the lecture",
        f"- [00:04](https://youtu.be/{VIDEO_ID}?t=4) an eigenvector keeps its direction",
        f"- [01:05](https://youtu.be/{VIDEO_ID}?t=65) the eigenvalue scales it",
        f"- [1:02:05](https://youtu.be/{VIDEO_ID}?t=3725) thanks for watching",
    ]


def test_material_gives_context_and_seconds() -> None:
    message = build_material(META, TRANSCRIPT)
    assert "title: Linear algebra: eigenvectors" in message
    assert f"video_id: {VIDEO_ID}" in message
    assert "channel: Math Channel" in message
    assert "[65s] Eigenvectors" in message  # a chapter
    assert "[4s] an eigenvector keeps its direction\n" in message
    assert "[7s]" not in message  # the blank caption is dropped
    assert message.rstrip().endswith("[3725s] thanks for watching\n</transcript>")


NOTE_SECTIONS = (
    "## Summary",
    "## Key concepts",
    "## Outline",
    "## Worked examples",
    "## Common misconceptions",
    "## Connections",
    "## Review questions",
)


def test_prompts_ask_for_the_template_and_links() -> None:
    for task in (NOTE_TASK, COMBINE_TASK):
        positions = [task.index(section) for section in NOTE_SECTIONS]
        assert positions == sorted(positions)
    assert "chapters" in NOTE_TASK
    assert "https://youtu.be/VIDEO_ID?t=SECONDS" in SYSTEM_PROMPT
    assert "[[" in SYSTEM_PROMPT and "Never write wiki links" in SYSTEM_PROMPT
    for group in ("Gap analysis", "Application", "One step further", "Synthesis", "> [!question]- Answer"):
        assert group in ASSESSMENT_TASK
    assert "time range" in SECTION_TASK and "time range" in COMBINE_TASK
    assert re.fullmatch(r"notes-[0-9a-f]{12}", PROMPT_VERSION)


def test_render_note_layout() -> None:
    body = NoteBody(markdown="\n## Summary\nEigen things.\n", model=MODEL, usage=Usage(10, 20))
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    note = render_note(
        META, TRANSCRIPT, body, tags=["math", "linear algebra"], prompt_version="p1", generated_at=when
    )
    assert front_matter(note) == {
        "title": "Linear algebra: eigenvectors",
        "video_id": VIDEO_ID,
        "url": f"https://www.youtube.com/watch?v={VIDEO_ID}",
        "channel": "Math Channel",
        "duration": 3725,
        "upload_date": "2024-03-01",
        "language": "en",
        "tags": ["math", "linear algebra"],
        "model": MODEL,
        "prompt_version": "p1",
        "generated_at": "2026-01-02T03:04:05+00:00",
    }
    after = FRONT_MATTER.sub("", note)
    assert after.startswith(
        "\n# Linear algebra: eigenvectors\n\n[Watch on YouTube](https://www.youtube.com/watch?v="
    )
    assert "Math Channel · English automatic captions · 1:02:05 · 2024-03-01" in after
    assert after.endswith("\n\n## Summary\nEigen things.\n")


def test_the_link_line_says_why_other_captions_than_the_preferred_ones_were_used() -> None:
    transcript = dataclasses.replace(TRANSCRIPT, fallback_reason="the English captions need a PO token")
    note = render_note(META, transcript, None)
    assert "English automatic captions (the English captions need a PO token) · 1:02:05" in note
    assert "(the English captions need a PO token)" in render_transcript(META, transcript)


def test_transcript_only_note_links_to_the_transcript_file_beside_it() -> None:
    note = render_note(META, TRANSCRIPT, None, transcript_path=Path("/out/math/Linear algebra.transcript.md"))
    assert front_matter(note)["model"] is None
    assert "[read the transcript](Linear%20algebra.transcript.md)" in note
    assert "[Transcript](Linear%20algebra.transcript.md)" in note  # in the link line
    assert "## Summary" not in note
    assert "## Transcript" not in note


def test_transcript_only_note_without_a_file_carries_the_transcript() -> None:
    note = render_note(META, TRANSCRIPT, None)
    assert f"- [01:05](https://youtu.be/{VIDEO_ID}?t=65) the eigenvalue scales it" in note


def test_untitled_video_gets_a_title() -> None:
    note = render_note(VideoMeta(video_id=VIDEO_ID), TRANSCRIPT, None)
    assert front_matter(note)["title"] == f"Video {VIDEO_ID}"
    assert front_matter(note)["duration"] is None
    assert f"\n# Video {VIDEO_ID}\n" in note


@given(title=st.text(), channel=st.none() | st.text(), tags=st.lists(st.text(), max_size=3))
@example(title="He said: \"yes\" --- or 'no'", channel="a: b", tags=["#x"])
@example(title="---\n...\n---", channel="- list", tags=["null", "true", "2024-01-01"])
@example(title="Emoji 🎓🔥 & ünïcödé", channel="{not: a map}", tags=["[x]"])
@example(title="line one\nline two\r\nline\u2028three\x85", channel="\t", tags=[" padded "])
@example(title="'", channel="%YAML 1.1", tags=["&anchor", "*alias", "!tag"])
def test_front_matter_round_trips_any_title(title: str, channel: str | None, tags: list[str]) -> None:
    meta = VideoMeta(video_id=VIDEO_ID, title=title, channel=channel, upload_date="2024-01-01")
    note = render_note(meta, TRANSCRIPT, None, tags=tags)
    loaded = front_matter(note)
    assert loaded["title"] == meta.display_title
    assert loaded["channel"] == channel
    assert loaded["tags"] == tags
    assert loaded["upload_date"] == "2024-01-01"
    heading = [line for line in note.splitlines() if line.startswith("# ")]
    assert heading == [f"# {' '.join(meta.display_title.split())}"]


# --- the engine, with the real SDK against the fake API -----------------------------------------------


@pytest.fixture
def engine(fake_anthropic: FakeAnthropic) -> Iterator[AnthropicEngine]:
    """An engine (one call a video) reaching the fake through ANTHROPIC_BASE_URL, base_url left to the SDK."""
    made = AnthropicEngine(
        api_key=API_KEY, model=MODEL, limiter=RequestLimiter(4, 1000), max_retries=2, assessment=False
    )
    yield made
    made.close()


def make_engine(fake: FakeAnthropic, **options: object) -> AnthropicEngine:
    settings: dict[str, object] = {
        "api_key": API_KEY,
        "model": MODEL,
        "limiter": RequestLimiter(4, 1000),
        "max_retries": 2,
        "base_url": fake.url,
        "assessment": False,
    }
    settings.update(options)
    return AnthropicEngine(**settings)  # type: ignore[arg-type]


def test_generate_returns_the_note_and_its_usage(
    fake_anthropic: FakeAnthropic, engine: AnthropicEngine
) -> None:
    body = engine.generate(META, TRANSCRIPT)

    [request] = fake_anthropic.message_requests()
    assert request.headers["anthropic-version"]
    assert request.body is not None
    assert request.body["model"] == MODEL
    assert request.body["max_tokens"] == 8000
    assert request.body["system"] == SYSTEM_PROMPT
    assert request.body["messages"] == build_messages(
        build_material(META, TRANSCRIPT), NOTE_TASK, cache=False
    )

    sent = request.response
    assert body.markdown == sent["content"][0]["text"].strip()
    assert body.model == MODEL
    assert body.usage == Usage(
        input_tokens=sent["usage"]["input_tokens"], output_tokens=sent["usage"]["output_tokens"]
    )
    assert body.prompt_version == PROMPT_VERSION
    assert "## Summary" in body.markdown and "## Review questions" in body.markdown
    seconds = re.findall(rf"https://youtu\.be/{VIDEO_ID}\?t=(\d+)", body.markdown)
    assert seconds and {int(s) for s in seconds} <= {int(s.start) for s in TRANSCRIPT.segments}


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
    assert "\n" not in str(caught.value)


def test_unknown_model_is_fatal(fake_anthropic: FakeAnthropic) -> None:
    engine = make_engine(fake_anthropic, model="claude-nope")
    with pytest.raises(NotesFatalError, match="model 'claude-nope' does not exist"):
        engine.check()
    with pytest.raises(NotesFatalError, match="model 'claude-nope' does not exist"):
        engine.generate(META, TRANSCRIPT)
    assert [r.path for r in fake_anthropic.requests] == ["/v1/models/claude-nope", "/v1/messages"]


def test_check_passes_for_a_known_model(fake_anthropic: FakeAnthropic, engine: AnthropicEngine) -> None:
    engine.check()
    assert [r.path for r in fake_anthropic.requests] == [f"/v1/models/{MODEL}"]


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
    with caplog.at_level(logging.WARNING, logger="studybuddy.notes"):
        engine.check()
    assert "cannot reach the Anthropic API" in caplog.text
    with pytest.raises(NotesError, match=f"^{VIDEO_ID}: cannot reach the Anthropic API") as caught:
        engine.generate(META, TRANSCRIPT)
    assert not isinstance(caught.value, NotesFatalError)


def test_rate_limit_is_retried_by_the_sdk(fake_anthropic: FakeAnthropic, engine: AnthropicEngine) -> None:
    fake_anthropic.fail_next(429, times=1, retry_after="0.01")
    body = engine.generate(META, TRANSCRIPT)
    assert [r.status for r in fake_anthropic.message_requests()] == [429, 200]
    assert "## Summary" in body.markdown


def test_overload_that_outlasts_the_retries_fails_the_video_only(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fail_next(529, times=5, retry_after="0.01")
    engine = make_engine(fake_anthropic, max_retries=3)
    with pytest.raises(
        NotesError, match=f"^{VIDEO_ID}: Anthropic is overloaded \\(529\\) after 3 retries$"
    ) as caught:
        engine.generate(META, TRANSCRIPT)
    assert not isinstance(caught.value, NotesFatalError)
    assert [r.status for r in fake_anthropic.message_requests()] == [529] * 4


def test_rate_limit_that_outlasts_the_retries_fails_the_video_only(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fail_next(429, times=3, retry_after="0.01")
    engine = make_engine(fake_anthropic, max_retries=2)
    with pytest.raises(NotesError, match="rate limit \\(429\\)") as caught:
        engine.generate(META, TRANSCRIPT)
    assert not isinstance(caught.value, NotesFatalError)
    assert len(fake_anthropic.message_requests()) == 3


@pytest.mark.parametrize(
    ("stop_reason", "message"),
    [
        ("max_tokens", "note cut off at max_tokens"),
        ("refusal", "refused to write this note"),
        ("model_context_window_exceeded", "does not fit the model's context window"),
        ("tool_use", "unexpected stop reason 'tool_use'"),
    ],
)
def test_unfinished_answers_are_never_accepted(
    fake_anthropic: FakeAnthropic, engine: AnthropicEngine, stop_reason: str, message: str
) -> None:
    fake_anthropic.stop_reason = stop_reason
    with pytest.raises(NotesError, match=message) as caught:
        engine.generate(META, TRANSCRIPT)
    assert not isinstance(caught.value, NotesFatalError)


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
    assert len(fake_anthropic.message_requests()) == 6
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
    assert len(fake_anthropic.message_requests()) == 2


def test_an_empty_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no Anthropic API key"):
        AnthropicEngine(api_key="", model=MODEL, limiter=RequestLimiter(1, 1))


# --- assessments, prompt caching, long videos -----------------------------------------------------------


def lecture(hours: float, step: float = 6.0) -> Transcript:
    """A lecture with a caption every `step` seconds, about 150 words a minute."""
    count = int(hours * 3600 / step)
    segments = tuple(
        Segment(
            index * step, step, f"point {index} about vectors and matrices spoken at second {index * step:g}"
        )
        for index in range(count)
    )
    return Transcript(VIDEO_ID, "English", "en", False, segments)


def sent_text(request: object) -> str:
    body = getattr(request, "body")
    return "".join(block["text"] for block in body["messages"][0]["content"])


def test_note_and_assessment_share_the_cached_transcript(
    fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    engine = make_engine(fake_anthropic, assessment=True)
    body = engine.generate(META, TRANSCRIPT)

    note_call, assessment_call = fake_anthropic.message_requests()
    assert note_call.body is not None and assessment_call.body is not None
    assert note_call.body["system"] == assessment_call.body["system"] == SYSTEM_PROMPT
    material = {
        "type": "text",
        "text": build_material(META, TRANSCRIPT),
        "cache_control": {"type": "ephemeral"},
    }
    assert note_call.body["messages"][0]["content"] == [material, {"type": "text", "text": NOTE_TASK}]
    assert assessment_call.body["messages"][0]["content"] == [
        material,
        {"type": "text", "text": ASSESSMENT_TASK},
    ]

    first, second = (call.response["usage"] for call in (note_call, assessment_call))
    assert first["cache_creation_input_tokens"] > 0 and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert body.usage == Usage(
        input_tokens=first["input_tokens"] + second["input_tokens"],
        output_tokens=first["output_tokens"] + second["output_tokens"],
        cache_read_tokens=second["cache_read_input_tokens"],
        cache_write_tokens=first["cache_creation_input_tokens"],
    )
    assert body.markdown.index("## Review questions") < body.markdown.index("## Assessment")
    assert "> [!question]- Answer" in body.markdown
    path = tmp_path / "note.md"
    path.write_text(render_note(META, TRANSCRIPT, body, prompt_version=body.prompt_version))
    assert check_note(path)["prompt_version"] == PROMPT_VERSION


def test_without_assessment_nothing_is_cached(fake_anthropic: FakeAnthropic, engine: AnthropicEngine) -> None:
    body = engine.generate(META, TRANSCRIPT)
    [request] = fake_anthropic.message_requests()
    assert request.body is not None
    assert all("cache_control" not in block for block in request.body["messages"][0]["content"])
    assert "## Assessment" not in body.markdown


@pytest.mark.parametrize(("hours", "budget"), [(3, 20_000), (10, DEFAULT_MAX_INPUT_TOKENS)])
def test_a_long_video_is_written_in_sections_then_combined(
    fake_anthropic: FakeAnthropic, tmp_path: Path, hours: float, budget: int
) -> None:
    transcript = lecture(hours)
    meta = VideoMeta(video_id=VIDEO_ID, title="A long lecture", duration=transcript.end)
    engine = make_engine(fake_anthropic, assessment=True, max_input_tokens=budget)
    body = engine.generate(meta, transcript)

    requests = fake_anthropic.message_requests()
    tasks = [request.body["messages"][0]["content"][-1]["text"] for request in requests if request.body]
    sections = [request for request, task in zip(requests, tasks, strict=True) if task == SECTION_TASK]
    assert len(sections) >= 2 and tasks[len(sections) :] == [COMBINE_TASK, ASSESSMENT_TASK]
    # Every caption is sent once, in order, with its absolute second; no call is over the budget.
    seconds = [int(s) for request in sections for s in re.findall(r"^\[(\d+)s\]", sent_text(request), re.M)]
    assert seconds == [int(segment.start) for segment in transcript.segments]
    for request in sections:
        assert estimate_tokens(SYSTEM_PROMPT + sent_text(request)) <= budget
    # The combining call gets each section's notes with its time range, and shares them with the assessment.
    combine, assessment = requests[len(sections) :]
    ranges = re.findall(r'<section from="(\d+)s" to="(\d+)s">', sent_text(combine))
    assert len(ranges) == len(sections) and int(ranges[0][0]) == 0
    assert int(ranges[-1][1]) == int(transcript.end)
    assert assessment.response["usage"]["cache_read_input_tokens"] > 0
    # One note, whose links all point at seconds the transcript has, spread over the whole video.
    linked = {int(s) for s in re.findall(rf"youtu\.be/{VIDEO_ID}\?t=(\d+)", body.markdown)}
    assert linked <= {int(segment.start) for segment in transcript.segments}
    assert max(linked) > transcript.end * 0.9
    assert body.markdown.count("## Summary") == 1
    assert body.usage.input_tokens == sum(r.response["usage"]["input_tokens"] for r in requests)
    path = tmp_path / "long.md"
    path.write_text(render_note(meta, transcript, body, prompt_version=body.prompt_version))
    check_note(path)


def section_sizes(fake: FakeAnthropic) -> list[int]:
    """Captions sent in each section call so far."""
    sent = [
        r
        for r in fake.message_requests()
        if r.body and r.body["messages"][0]["content"][-1]["text"] == SECTION_TASK
    ]
    return [caption_count(sent_text(request)) for request in sent]


def test_a_cut_off_section_is_retried_in_smaller_pieces(fake_anthropic: FakeAnthropic) -> None:
    transcript = lecture(3)
    engine = make_engine(fake_anthropic, max_input_tokens=20_000)
    engine.generate(META, transcript)
    whole = section_sizes(fake_anthropic)
    fake_anthropic.requests.clear()
    fake_anthropic.max_tokens_above = max(whole) - 1  # the largest section is cut off, its halves are not
    body = engine.generate(META, transcript)

    statuses = [r.response["stop_reason"] for r in fake_anthropic.message_requests()]
    assert statuses.count("max_tokens") == whole.count(max(whole)) and statuses[-1] == "end_turn"
    retried = section_sizes(fake_anthropic)
    assert sum(retried) - sum(whole) == max(whole) * statuses.count("max_tokens")  # sent again, in pieces
    assert "## Summary" in body.markdown


def test_a_section_cut_off_even_when_smaller_fails_the_video(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.max_tokens_above = 1
    engine = make_engine(fake_anthropic, max_input_tokens=20_000)
    with pytest.raises(
        NotesError, match=r"cut off at max_tokens \(8000\) even in a smaller section"
    ) as caught:
        engine.generate(META, lecture(3))
    assert not isinstance(caught.value, NotesFatalError)
    assert len(fake_anthropic.message_requests()) <= 3  # the first section, then its first piece


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
