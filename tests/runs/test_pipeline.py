"""The pipeline against a faked YouTube (`responses`) and the fake Anthropic API: workers, retries, reruns."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
import yaml

from studybuddy.config import Settings
from studybuddy.egress.sessions import ProxyEndpoint
from studybuddy.errors import BlockedError, ErrorKind, NotesFatalError, OutputError
from studybuddy.models import NoteBody, Transcript, VideoMeta
from studybuddy.notes.anthropic import AnthropicEngine
from studybuddy.notes.engine import NoteEngine
from studybuddy.notes.offline import OfflineEngine
from studybuddy.notes.ratelimit import RequestLimiter
from studybuddy.proxyspec import ProxySpec, parse_proxy
from studybuddy.runs.admission import Admission
from studybuddy.runs.pipeline import Pipeline
from studybuddy.runs.progress_records import Stage, Summary
from studybuddy.runs.workers import Pacer, RenewingPacer, Worker, WorkerFactory
from studybuddy.schema import StudyNote
from studybuddy.store import output as output_module
from studybuddy.store.archive import Archive
from studybuddy.store.archive_rows import Status
from studybuddy.store.links import RELATED_START
from tests.fakes import youtube_pages as yt
from tests.fakes.anthropic_server import API_KEY, MODEL, FakeAnthropic
from tests.fakes.youtube_mock import MockYouTube, video
from tests.fakes.youtube_pages import FakeTrack

FAST = Settings(backoff_s=0.001, notes=False, links=False)


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as requests_mock:
        yield requests_mock


def run(
    tmp_path: Path,
    ids: list[str],
    settings: Settings = FAST,
    *,
    engine: NoteEngine | None = None,
    factory: WorkerFactory | None = None,
    admission: Admission | None = None,
    pacer: Pacer | None = None,
) -> Summary:
    settings = dataclasses.replace(settings, output=tmp_path / "notes")
    with Archive.open(settings.output) as archive:
        pipeline = new_pipeline(
            archive, settings, engine=engine, factory=factory, admission=admission, pacer=pacer
        )
        return pipeline.run(ids)


def new_pipeline(
    archive: Archive,
    settings: Settings,
    *,
    engine: NoteEngine | None = None,
    factory: WorkerFactory | None = None,
    admission: Admission | None = None,
    pacer: Pacer | None = None,
) -> Pipeline:
    return Pipeline.from_settings(
        settings, archive, engine=engine, worker_factory=factory, admission=admission, pacer=pacer
    )


def rows(tmp_path: Path) -> dict[str, tuple[Status, ErrorKind | None, int]]:
    with Archive.open(tmp_path / "notes") as archive:
        return {row.video_id: (row.status, row.error_kind, row.attempts) for row in archive.rows()}


def test_sequential_run_writes_notes_and_transcripts_with_three_requests_each(
    tmp_path: Path, mock: responses.RequestsMock
) -> None:
    youtube = MockYouTube.of(video(n) for n in range(3))
    youtube.install(mock)
    summary = run(tmp_path, list(youtube.videos))
    assert (summary.done, summary.failed, summary.skipped) == (3, 0, 0)
    assert youtube.per_video() == dict.fromkeys(youtube.videos, 3)
    note = (tmp_path / "notes" / "Lecture 1.md").read_text()
    front_matter = yaml.safe_load(note.split("---\n")[1])
    assert front_matter["video_id"] == "vid00000001"
    assert front_matter["channel"] == "Networking Explained"
    transcript = (tmp_path / "notes" / "Lecture 1.transcript.md").read_text()
    assert "https://youtu.be/vid00000001?t=1" in transcript
    assert rows(tmp_path) == dict.fromkeys(youtube.videos, (Status.DONE, None, 1))


def test_rerun_skips_done_videos_and_force_redoes_them_in_place(
    tmp_path: Path, mock: responses.RequestsMock
) -> None:
    youtube = MockYouTube.of([video(1)])
    youtube.install(mock)
    run(tmp_path, ["vid00000001"])
    again = run(tmp_path, ["vid00000001"])
    assert (again.done, again.skipped) == (0, 1)
    assert (again.outcomes[0].title, again.outcomes[0].reason) == ("Lecture 1", "already done")
    assert youtube.requests_for("vid00000001") == 3
    forced = run(tmp_path, ["vid00000001"], dataclasses.replace(FAST, force=True))
    assert forced.done == 1
    assert sorted(p.name for p in (tmp_path / "notes").glob("*.md")) == [
        "Lecture 1.md",
        "Lecture 1.transcript.md",
    ]
    assert rows(tmp_path)["vid00000001"] == (Status.DONE, None, 2)


def test_same_title_never_overwrites(tmp_path: Path, mock: responses.RequestsMock) -> None:
    youtube = MockYouTube.of([video(1, title="Same"), video(2, title="Same")])
    youtube.install(mock)
    run(tmp_path, list(youtube.videos))
    names = sorted(p.name for p in (tmp_path / "notes").glob("*.md") if "transcript" not in p.name)
    assert names == ["Same [vid00000002].md", "Same.md"]


def test_permanent_failure_is_recorded_and_not_refetched(
    tmp_path: Path, mock: responses.RequestsMock
) -> None:
    youtube = MockYouTube.of([video(1, tracks=()), video(2)])
    youtube.install(mock)
    summary = run(tmp_path, ["vid00000001", "vid00000002"])
    assert (summary.done, summary.failed, summary.failed_by_kind) == (1, 1, {"permanent": 1})
    failed = next(o for o in summary.outcomes if o.stage is Stage.FAILED)
    assert failed.reason == "transcripts are disabled"
    calls = youtube.requests_for("vid00000001")
    again = run(tmp_path, ["vid00000001"])
    assert again.skipped == 1 and "failed before" in (again.outcomes[0].reason or "")
    assert youtube.requests_for("vid00000001") == calls
    assert rows(tmp_path)["vid00000001"] == (Status.FAILED, ErrorKind.PERMANENT, 1)


def test_a_note_from_automatic_captions_instead_of_protected_manual_ones_says_so(
    tmp_path: Path, mock: responses.RequestsMock
) -> None:
    tracks = (
        FakeTrack("en", "English", po_token_required=True),
        FakeTrack("en", "English (auto-generated)", generated=True),
    )
    youtube = MockYouTube.of([video(1, tracks=tracks)])
    youtube.install(mock)
    assert run(tmp_path, ["vid00000001"]).done == 1
    note = (tmp_path / "notes" / "Lecture 1.md").read_text()
    assert "automatic captions (the English captions need a PO token)" in note


def test_transient_errors_are_retried_with_backoff(tmp_path: Path, mock: responses.RequestsMock) -> None:
    youtube = MockYouTube.of([video(1)])
    youtube.install(mock)
    youtube.fail("vid00000001", 503, 500)
    summary = run(tmp_path, ["vid00000001"])
    assert summary.done == 1
    assert youtube.requests_for("vid00000001") == 5  # two failed watch pages, then a full fetch


def test_transient_errors_give_up_after_max_retries(tmp_path: Path, mock: responses.RequestsMock) -> None:
    youtube = MockYouTube.of([video(1)])
    youtube.install(mock)
    youtube.fail("vid00000001", 503, 503, 503)
    summary = run(tmp_path, ["vid00000001"], dataclasses.replace(FAST, max_retries=2))
    assert summary.failed_by_kind == {"transient": 1}
    assert youtube.requests_for("vid00000001") == 3  # first try + 2 retries
    assert rows(tmp_path)["vid00000001"][:2] == (Status.FAILED, ErrorKind.TRANSIENT)
    assert run(tmp_path, ["vid00000001"]).done == 1  # a rerun retries transient failures


def test_a_bug_in_reading_youtubes_answer_is_recorded_as_error_and_retried_only_when_asked(
    tmp_path: Path, mock: responses.RequestsMock
) -> None:
    youtube = MockYouTube.of([video(1), video(2)])
    youtube.players["vid00000001"] = [{"videoDetails": {}}]  # a shape the library cannot read
    youtube.install(mock)
    summary = run(tmp_path, ["vid00000001", "vid00000002"], dataclasses.replace(FAST, max_retries=3))
    assert (summary.done, summary.failed_by_kind) == (1, {"error": 1})
    failed = next(o for o in summary.outcomes if o.stage is Stage.FAILED)
    assert failed.reason is not None and failed.reason.startswith(
        "a bug, not a network problem: AttributeError"
    )
    assert youtube.requests_for("vid00000001") == 2  # watch page and player once: no retry
    with Archive.open(tmp_path / "notes") as archive:
        row = archive.get("vid00000001")
    assert row is not None and (row.status, row.error_kind, row.next_retry_at) == (
        Status.FAILED,
        ErrorKind.ERROR,
        None,  # watch does not come back to it on its own
    )
    again = run(tmp_path, ["vid00000001"])
    assert again.skipped == 1 and "failed before (error)" in (again.outcomes[0].reason or "")
    assert youtube.requests_for("vid00000001") == 2
    del youtube.players["vid00000001"]  # a fixed library: `archive retry --kind error` takes it again
    retried = run(tmp_path, ["vid00000001"], admission=Admission(kinds=frozenset({ErrorKind.ERROR})))
    assert retried.done == 1
    assert rows(tmp_path)["vid00000001"][:2] == (Status.DONE, None)


def test_block_without_proxy_fails_at_once(tmp_path: Path, mock: responses.RequestsMock) -> None:
    youtube = MockYouTube.of([video(1)])
    youtube.install(mock)
    youtube.fail("vid00000001", 429)
    summary = run(tmp_path, ["vid00000001"])
    assert summary.failed_by_kind == {"blocked": 1}
    assert youtube.requests_for("vid00000001") == 1


def test_block_with_proxy_renews_only_that_workers_identity(
    tmp_path: Path, mock: responses.RequestsMock
) -> None:
    youtube = MockYouTube.of([video(1)])
    youtube.install(mock)
    youtube.fail("vid00000001", 429, 429)
    factory = RecordingFactory(FAST, proxy=ProxyEndpoint("127.0.0.1", 9))
    summary = run(tmp_path, ["vid00000001"], FAST, factory=factory)
    assert summary.done == 1
    (worker,) = factory.workers
    assert worker.identity is not None and worker.identity.generation == 2
    assert worker.next_identity is not None and worker.next_identity.generation == 3  # known ahead
    assert len({name for name, _ in factory.requests}) == 3  # each generation had its own credentials


class RecordingPacer(RenewingPacer):
    """The pacer of a run without Tor, counting what the pipeline asks of it."""

    def __init__(self) -> None:
        self.moves = 0
        self.blocks = 0

    def move(self, worker: Worker) -> None:
        self.moves += 1
        super().move(worker)

    def on_blocked(self, worker: Worker, error: BlockedError) -> None:
        self.blocks += 1
        super().on_blocked(worker, error)


GEO_BLOCKED = yt.player_response(dataclasses.replace(video(1), tracks=(), playability=yt.GEO_BLOCKED))


@pytest.mark.parametrize("elsewhere", ["playable", "geo-blocked"])
def test_a_geo_blocked_video_tries_another_exit_once_without_blaming_this_one(
    tmp_path: Path, mock: responses.RequestsMock, elsewhere: str
) -> None:
    youtube = MockYouTube.of([video(1)])
    second = yt.player_response(youtube.videos["vid00000001"]) if elsewhere == "playable" else GEO_BLOCKED
    youtube.players["vid00000001"] = [GEO_BLOCKED, second]
    youtube.install(mock)
    factory = RecordingFactory(FAST, proxy=ProxyEndpoint("127.0.0.1", 9))
    pacer = RecordingPacer()
    summary = run(tmp_path, ["vid00000001"], FAST, factory=factory, pacer=pacer)
    assert (pacer.moves, pacer.blocks) == (1, 0)  # another exit, and this one is not cooled down
    assert [kind for _, kind in youtube.calls].count("player") == 2  # once more, only once
    (worker,) = factory.workers
    assert worker.identity is not None and worker.identity.generation == 1
    if elsewhere == "playable":
        assert summary.done == 1
        return
    assert summary.failed_by_kind == {"permanent": 1}
    with Archive.open(tmp_path / "notes") as archive:
        row = archive.get("vid00000001")
    assert row is not None and row.error_kind is ErrorKind.PERMANENT
    assert row.error == f"video is unplayable: Video unavailable. {yt.GEO_BLOCK_REASON}"


def test_a_geo_blocked_video_without_another_exit_fails_at_once(
    tmp_path: Path, mock: responses.RequestsMock
) -> None:
    youtube = MockYouTube.of([video(1)])
    youtube.players["vid00000001"] = [GEO_BLOCKED, yt.player_response(youtube.videos["vid00000001"])]
    youtube.install(mock)
    pacer = RecordingPacer()
    summary = run(tmp_path, ["vid00000001"], pacer=pacer)
    assert summary.failed_by_kind == {"permanent": 1}
    assert pacer.moves == 0 and youtube.requests_for("vid00000001") == 2  # watch page and player, once


class RecordingFactory(WorkerFactory):
    """The real factory, plus a hook on every session that records (SOCKS username, URL) per request."""

    def __init__(
        self,
        settings: Settings,
        *,
        proxy: ProxyEndpoint | None,
        egress_for: Callable[[int], ProxySpec | None] | None = None,
    ) -> None:
        super().__init__(settings, proxy=proxy, egress_for=egress_for)
        self.workers: list[Worker] = []
        self.sessions: list[requests.Session] = []
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self) -> Worker:
        worker = super().__call__()
        with self.lock:
            self.workers.append(worker)
        original_connect = worker._connect

        def connect() -> tuple[requests.Session, object]:
            session, fetcher = original_connect()
            self._watch(session)
            return session, fetcher

        worker._connect = connect  # type: ignore[assignment,method-assign]
        self._watch(worker.session)
        return worker

    def _watch(self, session: requests.Session) -> None:
        with self.lock:
            self.sessions.append(session)
        username = session.proxies["https"].split("//")[1].split(":")[0]

        def record(response: requests.Response, *args: object, **kwargs: object) -> None:
            with self.lock:
                self.requests.append((username, video_of(response.request)))

        session.hooks["response"].append(record)


def test_workers_on_proxies_use_them_and_only_a_rotating_one_renews_after_a_block(
    tmp_path: Path, mock: responses.RequestsMock
) -> None:
    youtube = MockYouTube.of(video(n) for n in range(1, 3))
    youtube.install(mock)
    youtube.fail("vid00000001", 429, 429)
    youtube.fail("vid00000002", 429)
    rotating = parse_proxy("socks5h://bob-rotate:pw@127.0.0.1:9", rotating=True)
    fixed = parse_proxy("http://alice:pw@127.0.0.1:8")
    factory = RecordingFactory(FAST, proxy=None, egress_for=lambda index: rotating)
    assert run(tmp_path / "a", ["vid00000001"], FAST, factory=factory).done == 1
    (worker,) = factory.workers
    assert worker.egress is rotating and worker.identity is None
    assert [s.proxies["https"] for s in factory.sessions] == [rotating.url] * 3  # two renewals
    factory = RecordingFactory(FAST, proxy=None, egress_for=lambda index: fixed)
    summary = run(tmp_path / "b", ["vid00000002"], FAST, factory=factory)
    assert summary.failed_by_kind == {"blocked": 1}  # a fixed proxy keeps its IP: nothing to renew
    assert [s.proxies["https"] for s in factory.sessions] == [fixed.url]


def video_of(request: requests.PreparedRequest) -> str:
    """The video a YouTube request is about: `v=` in the URL, or `videoId` in the player's JSON body."""
    query = parse_qs(urlsplit(str(request.url)).query)
    if "v" in query:
        return query["v"][0]
    return str(json.loads(request.body or b"{}")["videoId"])


def test_parallel_workers_each_get_their_own_session_and_credentials(
    tmp_path: Path, mock: responses.RequestsMock
) -> None:
    youtube = MockYouTube.of(video(n) for n in range(12))
    youtube.install(mock)
    slow = mock.registered()[0].callback  # type: ignore[attr-defined]

    def slow_watch(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        time.sleep(0.05)  # keep every worker busy at once
        return slow(request)  # type: ignore[no-any-return]

    mock.registered()[0].callback = slow_watch  # type: ignore[attr-defined]
    settings = dataclasses.replace(FAST, parallel=True, workers=4)
    factory = RecordingFactory(settings, proxy=ProxyEndpoint("127.0.0.1", 9050))
    summary = run(tmp_path, list(youtube.videos), settings, factory=factory)

    assert summary.done == 12
    assert len(factory.workers) == 4
    assert len({id(s) for s in factory.sessions}) == 4
    proxies = {s.proxies["https"] for s in factory.sessions}
    assert len(proxies) == 4 and all(p.startswith("socks5h://sb-") for p in proxies)
    assert all(s.trust_env is False for s in factory.sessions)
    # every request of one video went through one worker's session, and every video made 3 requests
    by_video: dict[str, set[str]] = {}
    for username, vid in factory.requests:
        by_video.setdefault(vid, set()).add(username)
    assert set(by_video) == set(youtube.videos)
    assert all(len(users) == 1 for users in by_video.values())
    assert len(factory.requests) == 36
    assert len({next(iter(users)) for users in by_video.values()}) == 4  # all four workers did work


def test_notes_through_the_anthropic_api(
    tmp_path: Path, mock: responses.RequestsMock, fake_anthropic: FakeAnthropic
) -> None:
    mock.add_passthru(fake_anthropic.url)
    youtube = MockYouTube.of([video(1), video(2)])
    youtube.install(mock)
    engine = AnthropicEngine(api_key=API_KEY, model=MODEL, limiter=RequestLimiter(2, 100))
    settings = dataclasses.replace(FAST, notes=True, parallel=True, workers=2)
    summary = run(tmp_path, list(youtube.videos), settings, engine=engine)
    assert summary.done == 2
    note = (tmp_path / "notes" / "Lecture 2.md").read_text()
    assert "## Summary" in note and "https://youtu.be/vid00000002?t=" in note
    with Archive.open(tmp_path / "notes") as archive:
        row = archive.get("vid00000002")
    assert row is not None and row.model == MODEL and (row.output_tokens or 0) > 0


def test_a_key_refused_during_a_run_stops_it_without_failing_the_video(
    tmp_path: Path, mock: responses.RequestsMock, fake_anthropic: FakeAnthropic
) -> None:
    mock.add_passthru(fake_anthropic.url)
    youtube = MockYouTube.of([video(1)])
    youtube.install(mock)
    engine = AnthropicEngine(api_key="sk-ant-wrong-key-000", model=MODEL, limiter=RequestLimiter(1, 100))
    with pytest.raises(NotesFatalError, match="refused the API key"):
        run(tmp_path, ["vid00000001"], dataclasses.replace(FAST, notes=True), engine=engine)
    assert rows(tmp_path)["vid00000001"][:2] == (Status.RUNNING, None)  # left for the next run, not failed


class StrayMarkerEngine:
    """Writes notes whose body holds a related-notes start marker without its end (a model echoed one)."""

    name = "stray-marker"

    def check(self) -> None:
        """Always works."""

    def generate(self, meta: VideoMeta, transcript: Transcript) -> NoteBody:
        return NoteBody(StudyNote(summary=f"{transcript.text} {RELATED_START}"), "stray-model")

    def close(self) -> None:
        """Nothing to close."""


def test_a_note_whose_related_notes_cannot_be_linked_is_still_done_and_not_fetched_again(
    tmp_path: Path, mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    youtube = MockYouTube.of([video(1), video(2)])
    youtube.install(mock)
    settings = dataclasses.replace(FAST, notes=True, links=True)
    summary = run(tmp_path, list(youtube.videos), settings, engine=StrayMarkerEngine())
    assert (summary.done, summary.failed) == (2, 0)
    assert rows(tmp_path) == dict.fromkeys(youtube.videos, (Status.DONE, None, 1))
    assert (tmp_path / "notes" / "Lecture 1.md").read_text().count(RELATED_START) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("could not be linked" in line for line in warnings) == 2
    again = run(tmp_path, list(youtube.videos), settings, engine=StrayMarkerEngine())
    assert again.skipped == 2
    assert youtube.per_video() == dict.fromkeys(youtube.videos, 3)  # nothing fetched, nothing paid twice


def test_unwritable_note_fails_only_that_video(
    tmp_path: Path, mock: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    youtube = MockYouTube.of([video(1), video(2)])
    youtube.install(mock)
    real_write = output_module.atomic_write_text

    def write(path: Path, text: str) -> None:
        if "Lecture 1" in path.name:
            raise OutputError(f"{path}: No space left on device")
        real_write(path, text)

    monkeypatch.setattr(output_module, "atomic_write_text", write)
    summary = run(tmp_path, ["vid00000001", "vid00000002"])
    assert summary.done == 1
    assert summary.failed_by_kind == {"output": 1}
    assert not (tmp_path / "notes" / "Lecture 1.md").exists()
    assert rows(tmp_path)["vid00000001"][:2] == (Status.FAILED, ErrorKind.OUTPUT)


class InterruptCounter:
    """SIGINT as Ctrl-C (KeyboardInterrupt in the main thread), counting each one handled."""

    def __init__(self) -> None:
        self.handled = 0
        self.changed = threading.Condition()

    def __call__(self, signum: int, frame: object) -> None:
        with self.changed:
            self.handled += 1
            self.changed.notify_all()
        raise KeyboardInterrupt

    def wait_for(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.handled >= count, timeout=30)


class HeldEngine(OfflineEngine):
    """Offline notes, but the notes of `held` wait for `release`: a slow notes call in flight."""

    def __init__(self, held: str) -> None:
        self.held = held
        self.calls: list[str] = []
        self.in_call = threading.Event()
        self.release = threading.Event()

    def generate(self, meta: VideoMeta, transcript: Transcript) -> NoteBody:
        self.calls.append(meta.video_id)
        if meta.video_id == self.held:
            self.in_call.set()
            assert self.release.wait(30)
        return super().generate(meta, transcript)


def test_a_second_ctrl_c_while_stopping_hurries_but_the_archive_keeps_up_with_the_files(
    tmp_path: Path, mock: responses.RequestsMock
) -> None:
    youtube = MockYouTube.of(video(n) for n in range(1, 5))
    youtube.install(mock)
    fetching, release_fetch = threading.Event(), threading.Event()
    serve_watch = mock.registered()[0].callback  # type: ignore[attr-defined]

    def watch_page(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if "vid00000002" in str(request.url):  # the second worker is still fetching its video
            fetching.set()
            assert release_fetch.wait(30)
        return serve_watch(request)  # type: ignore[no-any-return]

    mock.registered()[0].callback = watch_page  # type: ignore[attr-defined]
    engine = HeldEngine("vid00000001")
    settings = dataclasses.replace(FAST, output=tmp_path / "notes", notes=True, parallel=True, workers=2)
    interrupts = InterruptCounter()
    previous = signal.signal(signal.SIGINT, interrupts)
    try:
        with Archive.open(settings.output) as archive:
            pipeline = new_pipeline(archive, settings, engine=engine)

            def press_ctrl_c_twice() -> None:
                assert engine.in_call.wait(30) and fetching.wait(30)
                os.kill(os.getpid(), signal.SIGINT)  # first: finish the videos in progress
                assert pipeline.stop_event.wait(30)
                os.kill(os.getpid(), signal.SIGINT)  # second, while the pool shuts down: hurry
                interrupts.wait_for(2)
                release_fetch.set()
                engine.release.set()

            presser = threading.Thread(target=press_ctrl_c_twice)
            presser.start()
            with pytest.raises(KeyboardInterrupt):
                pipeline.run(list(youtube.videos))
            presser.join()
            still_working = [t for t in threading.enumerate() if t.name.startswith("study-buddy_")]
            assert still_working == []  # the run never leaves (closing the archive) before its workers
    finally:
        signal.signal(signal.SIGINT, previous)
        release_fetch.set()
        engine.release.set()
        for thread in threading.enumerate():
            if thread.name.startswith("study-buddy_"):
                thread.join(30)
    notes = {path.name for path in (tmp_path / "notes").glob("*.md") if ".transcript." not in path.name}
    assert notes == {"Lecture 1.md"}  # the note whose call was in flight is written...
    assert rows(tmp_path) == {  # ...and recorded; the video fetched after the second Ctrl-C is left
        "vid00000001": (Status.DONE, None, 1),
        "vid00000002": (Status.RUNNING, None, 1),
    }
    assert engine.calls == ["vid00000001"]  # no notes call was started after the second Ctrl-C


def test_videos_listed_as_private_or_deleted_are_recorded_without_a_request(
    tmp_path: Path, mock: responses.RequestsMock
) -> None:
    youtube = MockYouTube.of([video(1)])
    youtube.install(mock)
    settings = dataclasses.replace(FAST, output=tmp_path / "notes")
    gone = {"privateVid0": "private video", "deletedVid0": "deleted video"}  # as their playlist lists them
    with Archive.open(settings.output) as archive:
        summary = new_pipeline(archive, settings).run(["vid00000001", *gone], unavailable=gone)
        errors = {row.video_id: row.error for row in archive.rows()}
    assert (summary.done, summary.failed_by_kind) == (1, {"permanent": 2})
    assert {o.video_id: o.reason for o in summary.outcomes if o.stage is Stage.FAILED} == gone
    assert youtube.per_video() == {"vid00000001": 3}  # nothing was asked of YouTube for them
    assert errors == {"vid00000001": None, **gone}
    assert {vid: state[:2] for vid, state in rows(tmp_path).items() if vid in gone} == dict.fromkeys(
        gone, (Status.FAILED, ErrorKind.PERMANENT)
    )
    again = run(tmp_path, list(gone))  # a rerun knows them: permanent failures are not retried
    assert {o.video_id: o.reason for o in again.outcomes} == {
        vid: f"failed before (permanent): {reason}; use --force to retry" for vid, reason in gone.items()
    }
