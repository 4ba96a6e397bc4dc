"""Tests for studybuddy.runner: what a run does before it spends anything on YouTube."""

from __future__ import annotations

from pathlib import Path

import pytest

from studybuddy import runner
from studybuddy.config import Settings
from studybuddy.errors import NotesFatalError
from studybuddy.models import NoteBody, Transcript, VideoMeta

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
