"""A catalogue of fake videos served through `responses`: the three requests of every fetch.

Unlike the fixed registrations in test_transcripts, the answers are computed per request, so one mock
serves any number of videos, counts requests per video and can fail chosen videos in chosen ways.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import responses

from tests.fakes import youtube_pages as yt
from tests.fakes.youtube_pages import FakeVideo

WATCH = re.compile(r"https://www\.youtube\.com/watch\?.*")
PLAYER = re.compile(r"https://www\.youtube\.com/youtubei/v1/player\?.*")
CAPTIONS = re.compile(r"https://www\.youtube\.com/api/timedtext\?.*")
OEMBED = re.compile(r"https://www\.youtube\.com/oembed\?.*")

Reply = tuple[int, dict[str, str], str]


def video(number: int, **changes: Any) -> FakeVideo:
    """A distinct fake video: id `vid` + 8 digits, title "Lecture N"."""
    fields: dict[str, Any] = {"video_id": f"vid{number:08d}", "title": f"Lecture {number}"}
    return FakeVideo(**(fields | changes))


@dataclass
class MockYouTube:
    videos: dict[str, FakeVideo]
    calls: list[tuple[str, str]] = field(default_factory=list)  # (video id, "watch"|"player"|"captions")
    failures: dict[str, list[int]] = field(default_factory=dict)  # video id -> statuses for next watch GETs
    # video id -> player answers to send instead, in turn (the last one stays)
    players: dict[str, list[Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, videos: Iterable[FakeVideo]) -> MockYouTube:
        return cls({v.video_id: v for v in videos})

    def install(self, mock: responses.RequestsMock) -> None:
        mock.add_callback(responses.GET, WATCH, callback=self._watch)
        mock.add_callback(responses.POST, PLAYER, callback=self._player)
        mock.add_callback(responses.GET, CAPTIONS, callback=self._captions)
        mock.add_callback(responses.GET, OEMBED, callback=lambda _r: (404, {}, "Not Found"))

    def fail(self, video_id: str, *statuses: int) -> None:
        """Answer the next watch-page requests of `video_id` with these HTTP statuses."""
        self.failures.setdefault(video_id, []).extend(statuses)

    def requests_for(self, video_id: str) -> int:
        with self.lock:
            return sum(1 for vid, _ in self.calls if vid == video_id)

    def per_video(self) -> Counter[str]:
        with self.lock:
            return Counter(vid for vid, _ in self.calls)

    def _video(self, video_id: str) -> FakeVideo:
        """The catalogue's video, or what YouTube says of an id it does not know."""
        unknown = FakeVideo(video_id=video_id, title="", tracks=(), playability=dict(yt.UNAVAILABLE))
        return self.videos.get(video_id, unknown)

    def _record(self, video_id: str, kind: str) -> None:
        with self.lock:
            self.calls.append((video_id, kind))

    def _watch(self, request: requests.PreparedRequest) -> Reply:
        video_id = parse_qs(urlsplit(str(request.url)).query)["v"][0]
        self._record(video_id, "watch")
        with self.lock:
            pending = self.failures.get(video_id)
            status = pending.pop(0) if pending else None
        if status is not None:
            return status, {}, "error"
        return 200, {"Content-Type": "text/html; charset=utf-8"}, yt.watch_page(self._video(video_id))

    def _player(self, request: requests.PreparedRequest) -> Reply:
        video_id = json.loads(request.body or b"{}")["videoId"]
        self._record(video_id, "player")
        with self.lock:
            answers = self.players.get(video_id)
            body = (answers.pop(0) if len(answers) > 1 else answers[0]) if answers else None
        if body is None:
            known = self.videos.get(video_id)
            body = yt.player_response(known) if known else {"playabilityStatus": yt.UNAVAILABLE}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def _captions(self, request: requests.PreparedRequest) -> Reply:
        video_id = parse_qs(urlsplit(str(request.url)).query)["v"][0]
        self._record(video_id, "captions")
        return 200, {"Content-Type": "text/xml"}, yt.caption_xml(self.videos[video_id].segments)
