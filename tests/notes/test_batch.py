"""`--batch`: notes through the Message Batches API of the fake server, resumed after a restart."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from click.testing import CliRunner

from studybuddy.cli.main import cli
from studybuddy.config import Settings
from studybuddy.errors import ConfigError, ErrorKind, NotesError
from studybuddy.models import Segment, Transcript, VideoMeta
from studybuddy.notes.anthropic import AnthropicEngine
from studybuddy.notes.batch import BatchNotes, batch_for
from studybuddy.notes.ratelimit import RequestLimiter
from studybuddy.runs.pipeline import Pipeline
from studybuddy.runs.progress_records import Summary
from studybuddy.store.archive import Archive
from studybuddy.store.archive_rows import ArchiveRow, BatchState, Status
from studybuddy.store.formats import load_saved_transcript, saved_transcript_path
from tests.fakes.anthropic_server import API_KEY, MODEL, FakeAnthropic, RecordedRequest
from tests.fakes.youtube_mock import MockYouTube, video

SETTINGS = Settings(backoff_s=0.001, notes=True, batch=True, links=False)
IDS = ["vid00000001", "vid00000002", "vid00000003"]


@pytest.fixture
def youtube(fake_anthropic: FakeAnthropic) -> Iterator[MockYouTube]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(fake_anthropic.url)
        catalogue = MockYouTube.of([video(1), video(2), video(3)])
        catalogue.install(mock)
        yield catalogue


def run_batch(
    tmp_path: Path, *, max_wait_s: float = 5.0, ids: list[str] = IDS, **engine_options: object
) -> Summary:
    """One run with fresh objects (archive, engine, batch, pipeline), as a new process would have."""
    settings = dataclasses.replace(
        SETTINGS, output=tmp_path / "notes", batch_poll_s=0.02, batch_max_wait_s=max_wait_s
    )
    engine = AnthropicEngine(api_key=API_KEY, model=MODEL, limiter=RequestLimiter(2, 1000), **engine_options)  # type: ignore[arg-type]
    try:
        with Archive.open(settings.output) as archive:
            return Pipeline.from_settings(settings, archive, engine=engine).run(ids)
    finally:
        engine.close()


def archive_rows(tmp_path: Path) -> dict[str, ArchiveRow]:
    with Archive.open(tmp_path / "notes") as archive:
        return {row.video_id: row for row in archive.rows()}


def custom_ids(request: RecordedRequest) -> list[str]:
    assert request.body is not None
    return sorted(r["custom_id"] for r in request.body["requests"])


def test_notes_and_assessments_come_from_one_batch_with_usage_and_batch_recorded(
    tmp_path: Path, fake_anthropic: FakeAnthropic, youtube: MockYouTube
) -> None:
    summary = run_batch(tmp_path)

    assert summary.done == 3
    [creation] = fake_anthropic.batch_creations()
    assert not [r for r in fake_anthropic.message_requests() if r.body and r.body["max_tokens"] > 1]
    assert custom_ids(creation) == sorted(f"{vid}-{call}" for vid in IDS for call in ("note", "assessment"))
    assert creation.body is not None
    for request in creation.body["requests"]:
        params = request["params"]
        assert params["model"] == MODEL and params["tool_choice"]["type"] == "tool"
        assert params["tool_choice"]["name"] == (
            "write_note" if request["custom_id"].endswith("note") else "write_assessment"
        )
    note = (tmp_path / "notes" / "Lecture 2.md").read_text()
    assert "## Summary" in note and "## Assessment" in note and "https://youtu.be/vid00000002?t=" in note
    with Archive.open(tmp_path / "notes") as archive:
        rows = {row.video_id: row for row in archive.rows()}
        assert archive.open_batches() == []
    batch_id = creation.response["id"]
    for row in rows.values():
        assert row.status is Status.DONE and row.model == MODEL
        assert row.batch_id == batch_id and row.batch_state == BatchState.WRITTEN
        assert (row.input_tokens or 0) > 0 and (row.output_tokens or 0) > 0


def test_a_broken_answer_is_repaired_in_a_second_batch(
    tmp_path: Path, fake_anthropic: FakeAnthropic, youtube: MockYouTube
) -> None:
    fake_anthropic.breaks = ["missing_section"]  # the first result of the first batch
    summary = run_batch(tmp_path, assessment=False)

    assert summary.done == 3
    first, second = fake_anthropic.batch_creations()
    broken = first.body["requests"][0]["custom_id"] if first.body else ""
    assert custom_ids(second) == [f"{broken}-r"]
    assert second.body is not None
    [repair] = second.body["requests"]
    [result] = repair["params"]["messages"][2]["content"]
    assert result["type"] == "tool_result" and "the answer has no `outline`" in result["content"]
    with Archive.open(tmp_path / "notes") as archive:
        rows = {row.video_id: row for row in archive.rows()}
        assert archive.open_batches() == []
    repaired = broken.removesuffix("-note")
    assert rows[repaired].batch_id == second.response["id"]  # priced as batched
    for row in rows.values():
        assert row.status is Status.DONE


def test_a_long_video_goes_in_sections_then_overview_and_assessment(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    segments = tuple(
        (i * 3.0, 3.0, f"Point {i} about vectors, matrices and their many uses.") for i in range(900)
    )
    long = video(4, segments=segments, length_seconds=2700)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(fake_anthropic.url)
        MockYouTube.of([long]).install(mock)
        summary = run_batch(tmp_path, ids=["vid00000004"], max_input_tokens=5000)

    assert summary.done == 1
    first, second = fake_anthropic.batch_creations()
    assert len(custom_ids(first)) >= 2 and all("-s" in cid for cid in custom_ids(first))
    assert custom_ids(second) == ["vid00000004-assessment", "vid00000004-overview"]
    note = (tmp_path / "notes" / "Lecture 4.md").read_text()
    assert "## Outline" in note and "## Assessment" in note


def test_a_restart_between_two_batches_polls_the_second_and_sends_nothing_again(
    tmp_path: Path, fake_anthropic: FakeAnthropic, youtube: MockYouTube
) -> None:
    fake_anthropic.breaks = ["prose"]
    fake_anthropic.next_batch_delays = [0.0, 3600.0]  # the repair batch is still processing at the stop
    with pytest.raises(NotesError, match="still processing"):
        run_batch(tmp_path, max_wait_s=0.2, assessment=False)
    with Archive.open(tmp_path / "notes") as archive:
        [(second_id, _model)] = archive.open_batches()
        pending = archive.pending_in_batch(second_id)
        done = [row.video_id for row in archive.rows() if row.status is Status.DONE]
    assert len(pending) == 1 and len(done) == 2
    fetches = {vid: youtube.requests_for(vid) for vid in IDS}
    fake_anthropic.batches[second_id].delay = 0.0  # it has ended meanwhile

    summary = run_batch(tmp_path, assessment=False)

    assert summary.done == 1  # the repaired one; the others were done already
    assert len(fake_anthropic.batch_creations()) == 2
    assert {vid: youtube.requests_for(vid) for vid in IDS} == fetches
    with Archive.open(tmp_path / "notes") as archive:
        assert archive.open_batches() == []
        assert all(row.status is Status.DONE for row in archive.rows())


def test_a_restart_polls_the_same_batch_instead_of_resubmitting(
    tmp_path: Path, fake_anthropic: FakeAnthropic, youtube: MockYouTube
) -> None:
    fake_anthropic.batch_delay = 3600.0  # still processing when the first run gives up
    with pytest.raises(NotesError, match="still processing"):
        run_batch(tmp_path, max_wait_s=0.1)
    with Archive.open(tmp_path / "notes") as archive:
        [(batch_id, model)] = archive.open_batches()
        pending = archive.pending_in_batch(batch_id)
    assert model == MODEL and sorted(pending) == IDS
    assert all(row.status is Status.RUNNING for row in pending.values())
    assert not list((tmp_path / "notes").glob("*.md"))
    fetches = {vid: youtube.requests_for(vid) for vid in IDS}

    fake_anthropic.batch_delay = 0.0  # the batch has ended meanwhile
    summary = run_batch(tmp_path)

    assert summary.done == 3
    assert len(fake_anthropic.batch_creations()) == 1  # ONE create across both runs
    assert {vid: youtube.requests_for(vid) for vid in IDS} == fetches  # no YouTube traffic on resume
    polled = [r.path for r in fake_anthropic.requests if r.method == "GET" and batch_id in r.path]
    assert f"/v1/messages/batches/{batch_id}/results" in polled
    with Archive.open(tmp_path / "notes") as archive:
        assert archive.open_batches() == []
        assert {row.batch_id for row in archive.rows()} == {batch_id}
    assert (tmp_path / "notes" / "Lecture 3.md").is_file()


def test_errored_and_expired_requests_fail_only_their_videos(
    tmp_path: Path, fake_anthropic: FakeAnthropic, youtube: MockYouTube
) -> None:
    fake_anthropic.batch_results = {"vid00000002-assessment": "errored", "vid00000003-note": "expired"}
    summary = run_batch(tmp_path)

    assert (summary.done, summary.failed) == (1, 2)
    rows = archive_rows(tmp_path)
    failed = {vid: row for vid, row in rows.items() if row.status is Status.FAILED}
    assert sorted(failed) == ["vid00000002", "vid00000003"]
    assert all(row.error_kind is ErrorKind.NOTES for row in failed.values())
    assert "bad request in batch" in failed["vid00000002"].error
    assert "expired" in failed["vid00000003"].error
    with Archive.open(tmp_path / "notes") as archive:
        assert archive.open_batches() == []


def test_a_stop_while_waiting_leaves_the_batch_open(
    tmp_path: Path, fake_anthropic: FakeAnthropic, youtube: MockYouTube
) -> None:
    fake_anthropic.batch_delay = 3600.0
    engine = AnthropicEngine(api_key=API_KEY, model=MODEL, limiter=RequestLimiter(1, 1000))
    meta = VideoMeta("vid00000001", title="Lecture 1", duration=20.0)
    transcript = Transcript("vid00000001", "English", "en", False, (Segment(0.0, 5.0, "Vectors add"),))
    stop = threading.Event()
    with Archive.open(tmp_path) as archive:
        archive.start("vid00000001")
        batch = BatchNotes(engine, archive, tmp_path, poll_interval_s=30.0, max_wait_s=60.0)
        batch.defer(meta, transcript)
        batch_id = batch.submit()
        threading.Timer(0.1, stop.set).start()  # Ctrl-C equivalent: the run's stop event
        assert batch.collect(stop, lambda outcome: pytest.fail(f"unexpected result {outcome}")) is False
        assert archive.open_batches() == [(batch_id, MODEL)]
    engine.close()
    assert load_saved_transcript(saved_transcript_path(tmp_path, "vid00000001")) == (meta, transcript)


def test_archive_stats_shows_batched_notes_at_half_price(
    tmp_path: Path, fake_anthropic: FakeAnthropic, youtube: MockYouTube
) -> None:
    run_batch(tmp_path)
    prices = tmp_path / "prices.toml"
    prices.write_text(f'[models."{MODEL}"]\ninput = 3\noutput = 15\n')
    tokens = archive_rows(tmp_path).values()
    full_price = (
        sum(
            3 * (row.input_tokens or 0)
            + 15 * (row.output_tokens or 0)
            + 3.75 * (row.cache_write_tokens or 0)
            + 0.3 * (row.cache_read_tokens or 0)
            for row in tokens
        )
        / 1e6
    )

    result = CliRunner().invoke(
        cli, ["archive", "stats", "-o", str(tmp_path / "notes"), "--prices", str(prices), "--json"]
    )

    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["models"][0]["batched_notes"] == 3
    assert stats["cost_usd"] == pytest.approx(full_price / 2, abs=1e-6)


def test_batch_poll_must_be_a_positive_duration(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["process", "--batch", "--batch-poll", "0s", "-o", str(tmp_path), "x"])
    assert result.exit_code == 1 and "--batch-poll '0s': must be longer than 0s" in result.output


def test_a_note_one_request_cannot_write_is_not_batched(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    music_only = video(3, segments=((0.0, 5.0, "[Music]"),))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(fake_anthropic.url)
        MockYouTube.of([video(1), video(2), music_only]).install(mock)
        summary = run_batch(tmp_path)

    assert (summary.done, summary.failed) == (2, 1)
    [creation] = fake_anthropic.batch_creations()
    assert {cid.split("-")[0] for cid in custom_ids(creation)} == set(IDS[:2])
    music_row = archive_rows(tmp_path)["vid00000003"]
    assert music_row.error_kind is ErrorKind.NOTES and "no spoken words" in (music_row.error or "")
    assert music_row.batch_id is None


def test_a_video_redone_without_batch_leaves_the_batch(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as archive:
        for video_id in IDS[:2]:
            archive.start(video_id)
        archive.record_batch("msgbatch_1", MODEL, dict.fromkeys(IDS[:2], "{}"))
        assert BatchNotes.is_pending(archive.get(IDS[0]))
        archive.record_done(
            IDS[0],
            title=None,
            channel=None,
            note_path=tmp_path / "a.md",
            transcript_path=None,
            usage=None,
            model=MODEL,
            exit_fingerprint=None,
            elapsed_s=1.0,
        )
        archive.record_failed(IDS[1], ErrorKind.TRANSIENT, "network")

        assert archive.pending_in_batch("msgbatch_1") == {}  # neither takes the batch's result any more
        assert archive.get(IDS[0]).batch_id is None  # priced at the full price
        assert archive.open_batches() == [("msgbatch_1", MODEL)]
        archive.close_batch("msgbatch_1")
        assert archive.open_batches() == []


def test_the_command_line_resumes_a_batch_after_a_stopped_run(
    tmp_path: Path, fake_anthropic: FakeAnthropic, youtube: MockYouTube, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["--batch", "--batch-poll", "0.02", "--model", MODEL, "-o", str(tmp_path / "out"), *IDS[:2]]
    env = {"ANTHROPIC_API_KEY": API_KEY}
    fake_anthropic.batch_delay = 3600.0
    stopped = CliRunner().invoke(cli, [*args, "--batch-max-wait", "0.1"], env=env)
    assert stopped.exit_code == 1
    assert "still processing" in stopped.output and "Run the same command again" in stopped.output

    fake_anthropic.batch_delay = 0.0
    resumed = CliRunner().invoke(cli, args, env=env)
    assert resumed.exit_code == 0, resumed.output
    assert "2 done" in resumed.output
    assert len(fake_anthropic.batch_creations()) == 1
    assert (tmp_path / "out" / "Lecture 1.md").is_file()


def test_batch_needs_the_anthropic_engine(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as archive:
        assert batch_for(Settings(batch=False), None, archive) is None
        with pytest.raises(ConfigError, match="--batch needs"):
            batch_for(Settings(batch=True, notes=False), None, archive)
