"""Tests for studybuddy.runner: one run from settings to outcome (engine, Tor, plan, pipeline, report)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses

from studybuddy.config import Settings
from studybuddy.egress.torlaunch import TorKeeper
from studybuddy.errors import ConfigError, InputError, NotesFatalError
from studybuddy.models import NoteBody, Transcript, VideoMeta
from studybuddy.notes.anthropic import AnthropicEngine
from studybuddy.notes.engine import NoteEngine
from studybuddy.notes.offline import OfflineEngine
from studybuddy.proxyspec import parse_proxy
from studybuddy.runs import runner
from studybuddy.runs.progress_records import Summary
from studybuddy.runs.runner import RunOutcome
from studybuddy.store.archive import Archive
from studybuddy.text import BadInput
from tests.fakes import youtube_lists as yl
from tests.fakes.anthropic_server import API_KEY, MODEL, FakeAnthropic
from tests.fakes.youtube_mock import MockYouTube, video
from tests.youtube.test_expand import CHANNEL_ID, CHANNEL_URL, PLAYLIST_ID, PLAYLIST_URL, FakeSite, listed


@pytest.fixture
def site() -> Iterator[FakeSite]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru("http://127.0.0.1")  # the fake Anthropic API
        yield FakeSite(mock)


class ClosingSpy:
    """Wraps the engine a run builds and records whether the run closed it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.engines: list[NoteEngine | None] = []
        self.closed = 0
        build = runner.build_engine

        def build_and_watch(settings: Settings) -> NoteEngine | None:
            engine = build(settings)
            if engine is not None:
                close = engine.close

                def counted_close() -> None:
                    self.closed += 1
                    close()

                engine.close = counted_close  # type: ignore[method-assign]
            self.engines.append(engine)
            return engine

        monkeypatch.setattr(runner, "build_engine", build_and_watch)


# stopping


@pytest.mark.parametrize("engine", ["offline", "anthropic"])
def test_a_stop_while_listing_ends_the_run_cleanly(
    site: FakeSite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_anthropic: FakeAnthropic,
    engine: str,
) -> None:
    site.add(PLAYLIST_URL, yl.FakeList(PLAYLIST_ID, "Course", listed(3)))
    site.add(CHANNEL_URL, yl.FakeList(CHANNEL_ID, "Lectures", listed(5), is_channel=True))
    stop = threading.Event()
    site.on_page = lambda url: stop.set()  # watch stops (Ctrl-C, SIGTERM) while the first list is read
    spy = ClosingSpy(monkeypatch)
    settings = Settings(output=tmp_path / "notes", tor="off", engine=engine, api_key=API_KEY, model=MODEL)

    outcome = runner.run(settings, [PLAYLIST_URL, CHANNEL_URL], [], stop=stop)

    assert [url for url in site.requests if url != "browse"] == [PLAYLIST_URL]  # the channel was never listed
    assert (outcome.summary.done, outcome.summary.failed, outcome.fatal) == (0, 0, None)
    assert outcome.bad_inputs == ()  # the list left unread is not reported as bad
    assert spy.closed == 1  # the note engine is closed
    notes_asked = [r for r in fake_anthropic.requests if (r.body or {}).get("max_tokens") != 1]
    assert notes_asked == []  # at most the key and model check, made before anything was listed
    with Archive.open(settings.output) as archive:
        assert archive.rows() == []  # nothing marked failed, nothing started


# the note engine


def test_without_an_api_key_the_run_uses_the_offline_engine() -> None:
    assert isinstance(runner.build_engine(Settings()), OfflineEngine)
    assert isinstance(runner.build_engine(Settings(engine="offline", api_key="sk-ant-test")), OfflineEngine)
    assert runner.build_engine(Settings(notes=False)) is None
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY is not set"):
        runner.build_engine(Settings(engine="anthropic"))
    engine = runner.build_engine(Settings(api_key="sk-ant-test"))
    assert isinstance(engine, AnthropicEngine)
    engine.close()


# Tor


def no_tor(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("Tor was started with nothing to fetch")


def test_nothing_to_fetch_starts_no_tor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only bad lines, or only videos already done: no Tor is started (it could take minutes)."""
    settings = Settings(output=tmp_path / "notes", notes=False, tor="off")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        MockYouTube.of([video(1)]).install(mock)
        assert runner.run(settings, ["vid00000001"], []).summary.done == 1
    monkeypatch.setattr(runner, "open_tor", no_tor)
    auto = dataclasses.replace(settings, tor="auto")
    again = runner.run(auto, ["vid00000001"], [])
    assert (again.summary.skipped, again.exit_code) == (1, 0)
    kept = runner.run(auto, ["vid00000001"], [], tor=TorKeeper(no_tor))  # watch's kept Tor is not asked
    assert kept.summary.skipped == 1
    bad_only = runner.run(auto, ["https://vimeo.com/1"], [])
    assert bad_only.exit_code == 1 and "not a YouTube video URL" in bad_only.report()


def test_proxies_and_a_named_tor_without_an_egress_are_refused(tmp_path: Path) -> None:
    settings = Settings(output=tmp_path, tor="system", proxies=(parse_proxy("socks5h://127.0.0.1:9050"),))
    with pytest.raises(InputError, match="proxies and --tor system: say which to use"):
        runner.run(settings, ["vid00000001"], [])


# the outcome


SUMMARY = Summary(3, 2, 0, 1, {"permanent": 1}, 12.0, ())
BAD = BadInput("urls.txt:2", "https://vimeo.com/1", "not a YouTube video URL")


def test_the_exit_code_is_0_only_when_nothing_failed() -> None:
    clean = dataclasses.replace(SUMMARY, failed=0, failed_by_kind={})
    assert RunOutcome(clean, ()).exit_code == 0
    assert RunOutcome(SUMMARY, ()).exit_code == 1  # a video failed
    assert RunOutcome(clean, (BAD,)).exit_code == 1  # an input line could not be used
    assert RunOutcome(clean, (), fatal="Tor stopped answering").exit_code == 1  # stopped early


def test_the_report_and_the_json_tell_the_same_story() -> None:
    outcome = RunOutcome(SUMMARY, (BAD,), "Tor stopped answering", ("vid00000001: subject Maths",), 2)
    lines = outcome.report().splitlines()
    assert lines[0] == BAD.message
    assert lines[-4:] == [
        "vid00000001: subject Maths",
        "2 duplicate(s) in the input taken once",
        "1 input line(s) could not be used (see above)",
        "Stopped early: Tor stopped answering. Run the same command again to finish the rest.",
    ]
    data = outcome.to_json()
    assert data["bad_inputs"] == [{"source": BAD.source, "text": BAD.text, "reason": BAD.reason}]
    assert (data["fatal"], data["subjects"], data["duplicates"], data["exit_code"]) == (
        "Tor stopped answering",
        ["vid00000001: subject Maths"],
        2,
        1,
    )
    assert (data["done"], data["failed"], data["failed_by_kind"]) == (2, 1, {"permanent": 1})


# the note engine is checked first

PLAYLIST = "https://www.youtube.com/playlist?list=PLxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"


class RefusingEngine:
    """A note engine whose check finds it cannot work (a refused key, a model without tool use)."""

    name = "refusing"

    def __init__(self) -> None:
        self.closed = False

    def check(self) -> None:
        raise NotesFatalError("model 'claude-old-1' cannot write structured notes")

    def generate(self, meta: VideoMeta, transcript: Transcript) -> NoteBody:
        raise AssertionError("no note is written after a failed check")

    def close(self) -> None:
        self.closed = True


def test_the_engine_is_checked_before_tor_starts_or_a_playlist_is_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = RefusingEngine()
    reached: list[str] = []
    monkeypatch.setattr(runner, "build_engine", lambda settings: engine)
    monkeypatch.setattr(runner, "open_tor", lambda *args, **kwargs: reached.append("tor"))
    monkeypatch.setattr(runner, "plan_videos", lambda *args, **kwargs: reached.append("playlist listed"))

    with pytest.raises(NotesFatalError, match="cannot write structured notes"):
        runner.run(Settings(output=tmp_path / "notes", tor="auto"), [PLAYLIST, "vid00000001"], [])

    assert reached == []
    assert engine.closed


# where workers start


def test_workers_start_one_per_proxy_and_the_rest_on_tor(tmp_path: Path) -> None:
    proxies = tuple(parse_proxy(f"socks5h://127.0.0.{n}:1080") for n in (21, 22, 23))
    mixed = Settings(output=tmp_path, parallel=True, workers=8, proxies=proxies, egress="tor,proxies")
    start = runner.egress_per_worker(mixed)
    assert start is not None
    assert [start(index) for index in range(8)] == [*proxies, None, None, None, None, None]
    few = runner.egress_per_worker(dataclasses.replace(mixed, workers=2))
    assert few is not None and [few(0), few(1)] == [proxies[0], None]  # Tor keeps a worker
    alone = runner.egress_per_worker(dataclasses.replace(mixed, egress="proxies"))
    assert alone is not None and [alone(index) for index in range(4)] == [*proxies, proxies[0]]
    assert runner.egress_per_worker(Settings(output=tmp_path)) is None
