"""Listing a run's playlists and channels on a worker: paced like a video, retried within bounds, planned
with the direct videos, on a worker of its own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from studybuddy.config import Settings
from studybuddy.egress.sessions import LISTER, ProxyEndpoint
from studybuddy.errors import BlockedError, TransientError
from studybuddy.runs.listing import Expander, plan_videos
from studybuddy.runs.workers import RetryPolicy, Worker, WorkerFactory
from studybuddy.text import BadInput
from studybuddy.youtube.expand import ExpansionError, ListedVideo
from studybuddy.youtube.inputs import read_inputs
from tests.fakes import youtube_lists as yl
from tests.youtube.test_expand import CHANNEL_ID, CHANNEL_URL, PLAYLIST_URL, FakeSite, listed


@pytest.fixture
def site() -> Iterator[FakeSite]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeSite(mock)


class RecordingPacer:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.workers: list[Any] = []  # each worker paced, once
        self.released: list[Any] = []

    def before_video(self, worker: Any, stop: threading.Event) -> None:
        self.calls.append("before")
        if worker not in self.workers:
            self.workers.append(worker)

    def after_video(self, worker: Any) -> None:
        self.calls.append("after")

    def on_blocked(self, worker: Any, error: BlockedError) -> bool:
        self.calls.append("blocked")
        return True

    def close(self) -> None:
        return None

    def exit_of(self, worker: Any) -> str | None:
        return None

    def can_move(self, worker: Any) -> bool:
        return True

    def release(self, worker: Any) -> None:
        self.released.append(worker)


class ScriptedLister:
    """Raises the scripted errors in turn, then lists one video."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, url: str, session: requests.Session, **_: Any) -> list[ListedVideo]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return [ListedVideo("vid00000001")]


class RenewableWorker:
    session = requests.Session()


def expander(lister: ScriptedLister, pacer: RecordingPacer, **retry: Any) -> Expander:
    policy = RetryPolicy(**({"max_retries": 2, "max_rotations": 2, "backoff_s": 0.001} | retry))
    worker: Any = RenewableWorker()
    return Expander(worker, pacer, threading.Event(), policy, lister=lister)


def collection() -> Any:
    return read_inputs([PLAYLIST_URL], []).collections[0]


def test_every_listing_is_paced_and_a_block_renews_the_circuit_before_retrying() -> None:
    pacer, lister = RecordingPacer(), ScriptedLister(BlockedError(PLAYLIST_URL, "HTTP 429"))

    assert expander(lister, pacer).expand(collection()) == [ListedVideo("vid00000001")]
    assert pacer.calls == ["before", "blocked", "before", "after"]


def test_retries_are_bounded() -> None:
    blocks = [BlockedError(PLAYLIST_URL, "HTTP 429")] * 5
    with pytest.raises(ExpansionError, match="blocked by YouTube"):
        expander(ScriptedLister(*blocks), RecordingPacer()).expand(collection())
    lister = ScriptedLister(*[TransientError(PLAYLIST_URL, "HTTP 503")] * 5)
    with pytest.raises(ExpansionError, match="HTTP 503"):
        expander(lister, RecordingPacer()).expand(collection())
    assert lister.calls == 3  # one try and max_retries=2 retries


def test_plan_puts_direct_videos_and_listed_ones_together_and_reports_lists_that_fail(
    site: FakeSite, tmp_path: Path
) -> None:
    site.add(CHANNEL_URL, yl.FakeList(CHANNEL_ID, "Lectures", listed(4), is_channel=True))
    site.pages[PLAYLIST_URL] = yl.gone_page()
    inputs = read_inputs(["vid00000002", "https://www.youtube.com/@lectures", PLAYLIST_URL], [])
    settings = Settings(output=tmp_path, order="shortest")

    plan = plan_videos(
        inputs,
        settings,
        worker_factory=WorkerFactory(settings, proxy=None),
        pacer=RecordingPacer(),
        retry=RetryPolicy(),
        stop=threading.Event(),
    )

    durations = {v.video_id: v.duration for v in listed(4)}
    assert plan.video_ids == sorted(durations, key=durations.__getitem__)
    assert plan.duplicates == 1  # vid00000002 is named directly and listed by the channel
    assert plan.bad == [
        BadInput(
            "argument 3",
            PLAYLIST_URL,
            "playlist or channel is gone or private (YouTube said: The playlist does not exist.)",
        )
    ]


def test_a_worker_for_listing_is_closed_after_use(site: FakeSite, tmp_path: Path, monkeypatch: Any) -> None:
    closed: list[int] = []
    monkeypatch.setattr(Worker, "close", lambda self: closed.append(self.index))
    site.add(CHANNEL_URL, yl.FakeList(CHANNEL_ID, "Lectures", listed(2), is_channel=True))
    settings = Settings(output=tmp_path)

    plan_videos(
        read_inputs(["https://www.youtube.com/@lectures"], []),
        settings,
        worker_factory=WorkerFactory(settings, proxy=None),
        pacer=RecordingPacer(),
        retry=RetryPolicy(),
        stop=threading.Event(),
    )

    assert closed == [LISTER]


def test_the_lister_never_shares_an_identity_with_a_pool_worker(site: FakeSite, tmp_path: Path) -> None:
    site.add(CHANNEL_URL, yl.FakeList(CHANNEL_ID, "Lectures", listed(2), is_channel=True))
    settings = Settings(output=tmp_path, parallel=True, workers=16)
    factory = WorkerFactory(settings, proxy=ProxyEndpoint("127.0.0.1", 9), run_id="run")
    pacer = RecordingPacer()

    plan = plan_videos(
        read_inputs(["https://www.youtube.com/@lectures"], []),
        settings,
        worker_factory=factory,
        pacer=pacer,
        retry=RetryPolicy(),
        stop=threading.Event(),
    )

    assert len(plan.video_ids) == 2
    (lister,) = pacer.workers
    pool = [factory() for _ in range(settings.workers)]  # every worker a run of 16 can have
    assert lister.index not in {worker.index for worker in pool}  # pacing state is kept per index
    usernames = {worker.identity.username for worker in pool}
    assert lister.identity.username not in usernames  # SOCKS usernames name circuits in Tor's events
    assert lister.identity.next().username not in usernames  # nor after a renewal
    assert pacer.released == [lister]  # the pacer forgets its exit once the listing is over
