"""Tests for studybuddy.notes.regenerate and `study-buddy notes regenerate`: saved transcripts, no YouTube."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import responses
from click.testing import CliRunner

from studybuddy.cli.main import cli
from studybuddy.config import Settings
from studybuddy.models import NoteBody, Segment, Transcript, VideoMeta
from studybuddy.notes.prompting import PROMPT_VERSION
from studybuddy.notes.regenerate import regenerate
from studybuddy.schema import StudyNote
from studybuddy.store.archive import Archive
from studybuddy.store.formats import save_transcript_json, saved_transcript_path
from studybuddy.store.links import RELATED_START
from studybuddy.store.render import render_note
from tests.fakes.anthropic_server import API_KEY, MODEL, FakeAnthropic
from tests.fakes.youtube_mock import MockYouTube, video
from tests.notecheck import check_note


def done_video(
    root: Path, archive: Archive, video_id: str, prompt_version: str, *, saved: bool = True
) -> Path:
    """A video done earlier: its note (by `prompt_version`), its row and, if `saved`, its saved transcript."""
    meta = VideoMeta(video_id, f"Lecture {video_id}", "Chan", 30.0)
    transcript = Transcript(
        video_id,
        "English",
        "en",
        False,
        tuple(Segment(i * 5.0, 5.0, f"idea {i} of {video_id}") for i in range(6)),
    )
    body = NoteBody(StudyNote(summary="Old note."), MODEL, prompt_version=prompt_version)
    note = root / f"Lecture {video_id}.md"
    note.write_text(render_note(meta, transcript, body, prompt_version=prompt_version))
    if saved:
        path = saved_transcript_path(root, video_id)
        path.parent.mkdir(exist_ok=True)
        path.write_text(save_transcript_json(meta, transcript))
    archive.record_done(
        video_id,
        title=meta.title,
        channel=meta.channel,
        note_path=note,
        transcript_path=None,
        usage=None,
        model=MODEL,
        exit_fingerprint=None,
        elapsed_s=1.0,
        prompt_version=prompt_version,
    )
    return note


def test_regenerate_rewrites_notes_of_older_prompts_in_place(
    fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    with Archive.open(tmp_path) as archive:
        old = done_video(tmp_path, archive, "oldPrompt01", "notes-000000000000")
        current = done_video(tmp_path, archive, "newPrompt01", PROMPT_VERSION)
        done_video(tmp_path, archive, "unsaved0001", "notes-000000000000", saved=False)
    current_text = current.read_text()

    result = CliRunner().invoke(
        cli, ["notes", "regenerate", "--older-than-prompt", "-o", str(tmp_path), "-m", MODEL]
    )

    assert result.exit_code == 0, result.output
    assert "1 regenerated, 1 skipped, 0 failed" in result.output
    assert "unsaved0001: skipped:" in result.output and "no saved transcript" in result.output
    meta = check_note(old)
    assert meta["prompt_version"] == PROMPT_VERSION
    assert "Old note." not in old.read_text() and "## Assessment" in old.read_text()
    assert current.read_text() == current_text  # already from the current prompts: untouched
    check, *notes = fake_anthropic.message_requests()
    assert check.body is not None and check.body["max_tokens"] == 1  # the model check, once
    assert [r.body["tool_choice"]["name"] for r in notes if r.body] == ["write_note", "write_assessment"]
    with Archive.open(tmp_path) as archive:
        row = archive.get("oldPrompt01")
        assert row is not None and row.prompt_version == PROMPT_VERSION and row.note_path == old
        assert row.cache_read_tokens and row.cache_write_tokens  # the assessment read the cached transcript


def test_regenerate_writes_the_notes_in_another_language(
    fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    with Archive.open(tmp_path) as archive:
        note = done_video(tmp_path, archive, "germanNotes", PROMPT_VERSION)

    result = CliRunner().invoke(
        cli,
        ["notes", "regenerate", "-o", str(tmp_path), "-m", MODEL, "--notes-lang", "de", "--no-assessment"],
    )

    assert result.exit_code == 0, result.output
    meta = check_note(note)
    assert (meta["language"], meta["source_language"]) == ("de", "en")
    [_check, request] = fake_anthropic.message_requests()
    assert request.body is not None and "notes_language: de" in request.body["system"][1]["text"]


class StrayMarkerEngine:
    """Writes notes whose body holds a related-notes start marker without its end: they cannot be linked."""

    name = "stray-marker"

    def check(self) -> None:
        """Always works."""

    def generate(self, meta: VideoMeta, transcript: Transcript) -> NoteBody:
        return NoteBody(StudyNote(summary=f"New note. {RELATED_START}"), MODEL, prompt_version=PROMPT_VERSION)

    def close(self) -> None:
        """Nothing to close."""


def test_a_regenerated_note_that_cannot_be_linked_is_recorded_all_the_same(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Archive.open(tmp_path) as archive:
        note = done_video(tmp_path, archive, "oldPrompt01", "notes-000000000000")

    outcome = regenerate(Settings(output=tmp_path), StrayMarkerEngine(), older_than_prompt=True)

    assert (outcome.regenerated, outcome.failed) == (["oldPrompt01"], [])
    assert "New note." in note.read_text()
    assert any("could not be linked" in record.getMessage() for record in caplog.records)
    with Archive.open(tmp_path) as archive:
        row = archive.get("oldPrompt01")
    assert row is not None and row.prompt_version == PROMPT_VERSION  # not paid for again next time


class CountingEngine(StrayMarkerEngine):
    """Writes a plain new note and counts what it wrote (what it would have been paid for)."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def generate(self, meta: VideoMeta, transcript: Transcript) -> NoteBody:
        self.written.append(meta.video_id)
        return NoteBody(StudyNote(summary="New note."), MODEL, prompt_version=PROMPT_VERSION)


def test_a_recorded_note_path_outside_the_output_folder_is_refused_and_the_others_regenerate(
    tmp_path: Path,
) -> None:
    root, elsewhere = tmp_path / "notes", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "target.md").write_text("someone else's file\n")
    with Archive.open(root) as archive:
        inside = done_video(root, archive, "inside00001", "notes-000000000000")
        for video_id, note_path in [
            ("absolute001", elsewhere / "absolute.md"),
            ("relative001", Path("../elsewhere/relative.md")),
            ("hidden00001", Path(".study-buddy.sqlite3")),
        ]:
            moved = done_video(root, archive, video_id, "notes-000000000000")
            archive.record_done(
                video_id, note_path=note_path, model=MODEL, prompt_version="notes-000000000000"
            )
            moved.unlink()
        done_video(root, archive, "symlink0001", "notes-000000000000").unlink()
        (root / "Lecture symlink0001.md").symlink_to(elsewhere / "target.md")
    engine = CountingEngine()

    outcome = regenerate(Settings(output=root, links=False), engine, older_than_prompt=True)

    assert outcome.regenerated == ["inside00001"] and engine.written == ["inside00001"]  # nothing paid for
    assert {video_id for video_id, _ in outcome.failed} == {
        "absolute001",
        "relative001",
        "hidden00001",
        "symlink0001",
    }
    assert all("not a note file inside the output folder" in reason for _, reason in outcome.failed)
    assert "\n" not in "".join(reason for _, reason in outcome.failed)
    assert "New note." in inside.read_text()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["target.md"]
    assert (elsewhere / "target.md").read_text() == "someone else's file\n"
    assert outcome.exit_code == 1


def test_regenerate_without_an_archive_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    result = CliRunner().invoke(cli, ["notes", "regenerate", "-o", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "no archive here" in result.output


def test_regenerate_takes_the_shared_archive_with_archive(
    fake_anthropic: FakeAnthropic,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_database: Callable[[], str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    url = fresh_database()
    with Archive.open(tmp_path, url) as archive:  # the server's archive; no archive file in the folder
        old = done_video(tmp_path, archive, "oldPrompt01", "notes-000000000000")
    command = ["notes", "regenerate", "--older-than-prompt", "-o", str(tmp_path), "-m", MODEL]

    without = CliRunner().invoke(cli, command)
    result = CliRunner().invoke(cli, [*command, "--archive", url])
    wrong = CliRunner().invoke(cli, [*command, "--archive", "mysql://user:pw@db/x"])

    assert without.exit_code == 1 and "no archive here" in without.output
    assert result.exit_code == 0, result.output
    assert "1 regenerated, 0 skipped, 0 failed" in result.output
    assert check_note(old)["prompt_version"] == PROMPT_VERSION
    with Archive.open(tmp_path, url) as archive:
        row = archive.get("oldPrompt01")
    assert row is not None and row.prompt_version == PROMPT_VERSION
    assert (
        wrong.exit_code == 1 and "unknown archive scheme 'mysql'" in wrong.output and "pw" not in wrong.output
    )


@pytest.fixture
def youtube_mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as requests_mock:
        requests_mock.add_passthru("http://127.0.0.1")
        yield requests_mock


def test_a_run_saves_what_regenerate_needs_and_regenerate_asks_no_youtube(
    fake_anthropic: FakeAnthropic,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    youtube_mock: responses.RequestsMock,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    MockYouTube.of([video(1), video(2)]).install(youtube_mock)
    out = tmp_path / "notes"
    common = ["-o", str(out), "-m", MODEL, "--no-links"]
    first = CliRunner().invoke(cli, [*common, "--transcript-format", "srt", "vid00000001"])
    second = CliRunner().invoke(cli, [*common, "--format", "json", "--no-assessment", "vid00000002"])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output

    note, json_note = out / "Lecture 1.md", out / "Lecture 2.json"
    assert check_note(note)["prompt_version"] == PROMPT_VERSION
    assert check_note(json_note)["prompt_version"] == PROMPT_VERSION
    assert (out / "Lecture 1.transcript.srt").read_text().startswith("1\n00:00:")
    assert {p.name for p in (out / ".transcripts").iterdir()} == {"vid00000001.json", "vid00000002.json"}
    with Archive.open(out) as archive:
        assert {row.prompt_version for row in archive.rows()} == {PROMPT_VERSION}
    youtube_calls = len(youtube_mock.calls)
    fake_anthropic.requests.clear()

    again = CliRunner().invoke(cli, ["notes", "regenerate", "-o", str(out), "-m", MODEL, "--no-assessment"])

    assert again.exit_code == 0, again.output
    assert "2 regenerated, 0 skipped, 0 failed" in again.output
    assert len(youtube_mock.calls) == youtube_calls  # not one request to YouTube
    assert len(fake_anthropic.message_requests()) == 1 + 2  # the model check, then one call a note
    check_note(note)
    check_note(json_note)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "Lecture 1.md",
        "Lecture 1.transcript.srt",
        "Lecture 2.json",
        "Lecture 2.transcript.md",
    ]
