"""Tests for studybuddy.runner: one run from settings to outcome (engine, Tor, plan, pipeline, report)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses

from studybuddy import runner
from studybuddy.archive import Archive
from studybuddy.config import Settings
from studybuddy.notes import NoteEngine
from tests.fakes import youtube_lists as yl
from tests.fakes.anthropic_server import API_KEY, MODEL, FakeAnthropic
from tests.test_expand import CHANNEL_ID, CHANNEL_URL, PLAYLIST_ID, PLAYLIST_URL, FakeSite, listed


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
    assert fake_anthropic.requests == []  # not even the key and model check: the run is stopping
    with Archive.open(settings.output) as archive:
        assert archive.rows() == []  # nothing marked failed, nothing started
