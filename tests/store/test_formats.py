"""Tests for studybuddy.formats: the JSON note, transcript formats and the saved transcript."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studybuddy.errors import InputError, OutputError
from studybuddy.models import Chapter, NoteBody, Segment, Transcript, Usage, VideoMeta
from studybuddy.schema import OutlineItem, Point, Question, StudyNote
from studybuddy.store.formats import (
    load_saved_transcript,
    render_note_json,
    render_transcript_as,
    save_transcript_json,
    saved_transcript_path,
    transcript_suffix,
)
from tests.notecheck import check_note

META = VideoMeta(
    "abcDEF12345",
    'A "quoted": title --- 🎓',
    "Chan",
    70.0,
    "2024-01-01",
    "desc",
    ("t",),
    (Chapter(0, "Intro"),),
)
TRANSCRIPT = Transcript(
    "abcDEF12345",
    "English",
    "en",
    True,
    (Segment(0.0, 2.5, "hello there"), Segment(2.0, 3.0, "second line"), Segment(65.25, 4.0, "the end")),
)
BODY = NoteBody(
    StudyNote(
        summary="It greets.",
        outline=(OutlineItem(2, "Greeting", (Point(2, "Hello."),)),),
        review_questions=(Question("Why?", "To be polite.", 65),),
    ),
    "claude-test-1",
    Usage(10, 20, 3, 4),
    prompt_version="notes-0123456789ab",
    language="de",
)


def test_srt_and_vtt_come_from_the_library_formatters() -> None:
    srt = render_transcript_as(META, TRANSCRIPT, "srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:02,000\nhello there\n\n2\n")
    assert "00:01:05,250 --> 00:01:09,250\nthe end\n" in srt
    vtt = render_transcript_as(META, TRANSCRIPT, "vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nhello there")
    assert render_transcript_as(META, TRANSCRIPT, "txt") == "hello there\nsecond line\nthe end\n"
    assert "[01:05](https://youtu.be/abcDEF12345?t=65) the end" in render_transcript_as(
        META, TRANSCRIPT, "md"
    )
    assert transcript_suffix("srt") == ".transcript.srt"
    with pytest.raises(InputError, match="--transcript-format 'doc'"):
        render_transcript_as(META, TRANSCRIPT, "doc")


def test_json_note_holds_meta_the_structure_and_usage(tmp_path: Path) -> None:
    path = tmp_path / "note.json"
    path.write_text(render_note_json(META, TRANSCRIPT, BODY))
    note = json.loads(path.read_text())
    assert note["meta"]["title"] == META.title and note["meta"]["prompt_version"] == "notes-0123456789ab"
    assert (note["meta"]["language"], note["meta"]["source_language"]) == ("de", "en")
    assert note["note"]["summary"] == "It greets."
    assert note["note"]["outline"] == [
        {"second": 2, "title": "Greeting", "points": [{"second": 2, "text": "Hello."}]}
    ]
    assert note["note"]["review_questions"] == [{"question": "Why?", "answer": "To be polite.", "second": 65}]
    assert note["note"]["assessment"] is None
    assert note["usage"] == {
        "input_tokens": 10,
        "output_tokens": 20,
        "cache_read_tokens": 3,
        "cache_write_tokens": 4,
    }
    check_note(path)


def test_saved_transcript_round_trips(tmp_path: Path) -> None:
    path = saved_transcript_path(tmp_path, META.video_id)
    assert path == tmp_path / ".transcripts" / "abcDEF12345.json"
    path.parent.mkdir()
    path.write_text(save_transcript_json(META, TRANSCRIPT))
    assert load_saved_transcript(path) == (META, TRANSCRIPT)


def test_a_missing_or_damaged_saved_transcript_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no saved transcript"):
        load_saved_transcript(tmp_path / "nope.json")
    damaged = tmp_path / "bad.json"
    damaged.write_text('{"meta": {}}')
    with pytest.raises(InputError, match="not a saved transcript"):
        load_saved_transcript(damaged)


def test_the_saved_transcript_of_an_id_that_is_not_a_video_id_has_no_path(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="not a YouTube video id"):
        saved_transcript_path(tmp_path, "../../outside")
