"""Tests for studybuddy.notes: the note file around an engine's structure (front matter, title, link line)."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from studybuddy.models import Chapter, NoteBody, Segment, Transcript, Usage, VideoMeta
from studybuddy.schema import StudyNote
from studybuddy.store.render import render_note, render_transcript
from tests.fakes.anthropic_server import MODEL
from tests.notecheck import front_matter

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


def test_render_note_layout() -> None:
    body = NoteBody(StudyNote(summary="Eigen things."), model=MODEL, usage=Usage(10, 20))
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
    assert after.endswith("\n\n## Summary\n\nEigen things.\n")


def test_notes_in_another_language_name_the_transcripts_in_the_front_matter() -> None:
    body = NoteBody(StudyNote(summary="Eigenvektoren."), model=MODEL, language="de")
    fields = front_matter(render_note(META, TRANSCRIPT, body))
    assert (fields["language"], fields["source_language"]) == ("de", "en")
    same = NoteBody(StudyNote(summary="Eigen things."), model=MODEL, language="en")
    assert "source_language" not in front_matter(render_note(META, TRANSCRIPT, same))


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
