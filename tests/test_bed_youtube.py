"""The fake www.youtube.com of the test bed, driven by the real product fetcher (no Tor needed).

The server listens on two exit addresses at one free port; the test routes `www.youtube.com:443` to
one of them by patching urllib3's `create_connection` (test side only), so TLS, SNI and certificate
checks run as they do through Tor. A manual clock drives the rate limits.
"""

from __future__ import annotations

import html
import ipaddress
import json
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import urllib3.util.connection

from studybuddy.egress.sessions import new_session
from studybuddy.errors import BlockedError, FetchError, GeoBlockedError, PermanentError, TransientError
from studybuddy.models import Chapter, Segment
from studybuddy.youtube.transcripts import FetchResult, TranscriptFetcher
from tests.bed.youtube_server import CERT_NAMES, FakeYouTube, Limit
from tests.bed.youtube_site import BLOCK_STYLES, CASES, CatalogueVideo, SiteOptions, load_catalogue
from tests.fakes.pot_provider import make_token

EXIT_A = "127.0.0.11"
EXIT_B = "127.0.0.12"
REPO = Path(__file__).resolve().parents[1]
CATALOGUE = load_catalogue()
T = TypeVar("T")
NORMAL = [entry for entry in CATALOGUE.values() if entry.case == "normal"]


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Route:
    """Where this test's YouTube connections go: one exit address of the fake server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.exit = EXIT_A


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def running(clock: ManualClock) -> Iterator[FakeYouTube]:
    with FakeYouTube.start([EXIT_A, EXIT_B], 0, clock=clock) as server:
        yield server


@pytest.fixture
def server(running: FakeYouTube) -> FakeYouTube:
    running.configure(latency=0.0, limit=None, exit_limits={}, site=SiteOptions())
    running.reset()
    return running


@pytest.fixture
def route(server: FakeYouTube, monkeypatch: pytest.MonkeyPatch) -> Route:
    """Send YouTube's names to `route.exit`, loopback addresses where they say, and nothing anywhere else."""
    route = Route(server.port)
    connect = urllib3.util.connection.create_connection

    def routed(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        host, port = address
        if host in CERT_NAMES and port == 443:
            return connect((route.exit, route.port), *args, **kwargs)
        if ipaddress.ip_address(host).is_loopback:
            return connect(address, *args, **kwargs)
        raise AssertionError(f"the test tried to reach {host}:{port}")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", routed)
    return route


def fetch(
    server: FakeYouTube, video_id: str, *, ca_bundle: str | None = "", languages: tuple[str, ...] = ("en",)
) -> FetchResult:
    session = new_session(ca_bundle=server.ca_bundle if ca_bundle == "" else ca_bundle)
    with session:
        return TranscriptFetcher(session, languages=languages).fetch(video_id)


def failure(server: FakeYouTube, video_id: str) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch(server, video_id)
    return caught.value


def by_title(title: str) -> CatalogueVideo:
    return next(entry for entry in CATALOGUE.values() if entry.video.title == title)


def of_case(case: str) -> CatalogueVideo:
    return next(entry for entry in CATALOGUE.values() if entry.case == case)


def expected_segments(entry: CatalogueVideo, prefix: str = "") -> tuple[Segment, ...]:
    return tuple(
        Segment(start, dur, prefix + html.unescape(text)) for start, dur, text in entry.video.segments
    )


def test_catalogue_has_varied_normal_videos_and_every_special_case() -> None:
    assert len(NORMAL) >= 40
    assert {entry.case for entry in CATALOGUE.values()} == set(CASES)
    titles = [entry.video.title for entry in NORMAL]
    for nasty in ('"', ":", "---", "\U0001f331", "../../etc/passwd", "\u200f", "\u202e", "\n", "</script>"):
        assert any(nasty in title for title in titles), nasty
    assert any(len(title) == 300 for title in titles)
    assert any(entry.video.tracks[0].language_code == "de" for entry in NORMAL)
    for entry in CATALOGUE.values():
        assert re.fullmatch(r"[A-Za-z0-9_-]{11}", entry.video.video_id)
        assert 20 <= len(entry.video.segments) <= 200
    assert any("\n" in text for entry in NORMAL for _, _, text in entry.video.segments)
    assert load_catalogue() == CATALOGUE  # transcripts are generated deterministically


def test_fetch_gives_transcript_metadata_and_chapters(server: FakeYouTube, route: Route) -> None:
    entry = by_title("Linear Algebra: Eigenvalues and Eigenvectors")
    result = fetch(server, entry.video.video_id)
    assert result.transcript.segments == expected_segments(entry)
    assert (result.transcript.language_code, result.transcript.translated_from) == ("en", None)
    assert (result.meta.title, result.meta.channel) == (entry.video.title, entry.video.channel)
    assert result.meta.duration == entry.video.length_seconds
    assert result.meta.chapters == tuple(Chapter(start, title) for start, title in entry.video.chapters)
    assert len(result.meta.chapters) == 3


def test_stats_count_requests_videos_and_fetches_per_exit(server: FakeYouTube, route: Route) -> None:
    video_id = NORMAL[0].video.video_id
    fetch(server, video_id)
    stats = server.stats()
    exit_a, exit_b = stats["exits"][EXIT_A], stats["exits"][EXIT_B]
    assert exit_a["requests"] == {"watch": 1, "player": 1, "captions": 1, "oembed": 0, "list": 0, "other": 0}
    assert exit_a["videos_served"] == 1
    assert sum(exit_b["requests"].values()) == 0
    assert stats["videos"] == {video_id: 1}
    assert [event[1:] for event in stats["timeline"]] == [
        [EXIT_A, "watch", video_id, "ok"],
        [EXIT_A, "player", video_id, "ok"],
        [EXIT_A, "captions", video_id, "ok"],
    ]
    assert [(c["peer"], c["local"]) for c in stats["connections"]] == [("127.0.0.1", EXIT_A)]
    assert stats["tls_failures"] == []
    server.reset()
    assert server.stats()["videos"] == {}
    assert server.stats()["timeline"] == []


def test_every_normal_video_comes_with_its_exact_title(server: FakeYouTube, route: Route) -> None:
    for entry in NORMAL:
        result = fetch(server, entry.video.video_id)
        assert result.meta.title == entry.video.title
        assert len(result.transcript.segments) == len(entry.video.segments)
        assert result.transcript.language_code == "en"
        original = entry.video.tracks[0]
        if original.language_code == "en":
            assert result.transcript.translated_from is None
            assert result.transcript.is_generated == original.generated
        else:  # the library marks translations as generated
            assert result.transcript.translated_from == original.language_code
    assert server.stats()["exits"][EXIT_A]["videos_served"] == len(NORMAL)


def test_a_german_only_video_is_translated_to_english(server: FakeYouTube, route: Route) -> None:
    entry = by_title("Deutsch lernen: Die Fälle")
    result = fetch(server, entry.video.video_id)
    assert (result.transcript.language_code, result.transcript.translated_from) == ("en", "de")
    assert result.transcript.segments == expected_segments(entry, "[en] ")


def test_a_translation_comes_from_the_track_youtube_names(server: FakeYouTube, route: Route) -> None:
    entry = of_case("multi_track")
    assert entry.video.tracks[0].language_code == "zh-Hans"  # listed first
    result = fetch(server, entry.video.video_id, languages=("nl",))
    assert (result.transcript.language_code, result.transcript.translated_from) == ("nl", "en")
    assert result.transcript.segments == expected_segments(entry, "[nl] ")


def test_a_manual_track_behind_a_po_token_gives_way_to_the_automatic_one(
    server: FakeYouTube, route: Route
) -> None:
    entry = of_case("po_token_manual_only")
    result = fetch(server, entry.video.video_id)
    assert (result.transcript.language_code, result.transcript.is_generated) == ("en", True)
    assert result.transcript.fallback_reason == "the English captions need a PO token"
    assert result.transcript.segments == expected_segments(entry)
    assert server.stats()["videos"] == {entry.video.video_id: 1}


def test_a_geo_blocked_video_is_unplayable_only_through_the_exits_it_is_blocked_on(
    server: FakeYouTube, route: Route
) -> None:
    everywhere, one_exit = (entry for entry in CATALOGUE.values() if entry.case == "geo_blocked")
    assert (everywhere.blocked_on, one_exit.blocked_on) == (None, frozenset({EXIT_A}))
    for entry in (everywhere, one_exit):
        caught = failure(server, entry.video.video_id)
        assert type(caught) is GeoBlockedError
        assert "The uploader has not made this video available in your country" in caught.reason
    route.exit = EXIT_B
    assert type(failure(server, everywhere.video.video_id)) is GeoBlockedError
    assert fetch(server, one_exit.video.video_id).transcript.segments == expected_segments(one_exit)


@pytest.mark.parametrize(
    ("case", "error", "reason"),
    [
        ("transcripts_disabled", PermanentError, "transcripts are disabled"),
        ("unavailable", PermanentError, "video is unavailable"),
        ("age_restricted", PermanentError, "age restricted"),
        ("po_token_required", PermanentError, "PO token"),
        ("empty_captions", TransientError, "unreadable"),
    ],
)
def test_special_cases_map_to_their_error_kind(
    server: FakeYouTube, route: Route, case: str, error: type[FetchError], reason: str
) -> None:
    video_id = of_case(case).video.video_id
    caught = failure(server, video_id)
    assert type(caught) is error
    assert reason in caught.reason
    assert server.stats()["videos"] == {}  # no complete fetch


def test_an_unknown_id_is_unavailable(server: FakeYouTube, route: Route) -> None:
    caught = failure(server, "zzzzzzzzzzz")
    assert type(caught) is PermanentError
    assert "unavailable" in caught.reason


def test_a_title_only_oembed_knows_comes_from_oembed(server: FakeYouTube, route: Route) -> None:
    entry = of_case("oembed_only")
    result = fetch(server, entry.video.video_id)
    assert (result.meta.title, result.meta.channel) == (entry.video.title, entry.video.channel)
    assert server.stats()["exits"][EXIT_A]["requests"]["oembed"] == 1


@pytest.mark.parametrize(
    ("style", "reason"),
    [("bot_check", "bot check"), ("http_429", "rate limit"), ("recaptcha", "reCAPTCHA")],
)
def test_each_block_style_blocks_one_exit_while_the_other_serves(
    server: FakeYouTube, route: Route, style: str, reason: str
) -> None:
    server.configure(exit_limits={EXIT_A: Limit(videos=2, window=60, block_for=30, style=style)})
    first, second, third = (entry.video.video_id for entry in NORMAL[:3])
    fetch(server, first)
    fetch(server, second)
    caught = failure(server, third)
    assert type(caught) is BlockedError
    assert reason in caught.reason
    assert type(failure(server, first)) is BlockedError  # still blocked
    route.exit = EXIT_B
    assert fetch(server, third).meta.title == NORMAL[2].video.title
    stats = server.stats()
    assert stats["exits"][EXIT_A]["blocks"] == {name: int(name == style) for name in BLOCK_STYLES}
    assert stats["exits"][EXIT_A]["blocked_requests"][style] >= 2
    assert stats["exits"][EXIT_A]["blocked_for"] == 30
    assert stats["exits"][EXIT_A]["videos_served"] == 2
    assert stats["exits"][EXIT_B]["videos_served"] == 1
    assert stats["videos"] == {first: 1, second: 1, third: 1}


def test_the_limit_counts_videos_in_a_sliding_window(
    server: FakeYouTube, route: Route, clock: ManualClock
) -> None:
    server.configure(limit=Limit(videos=2, window=10, block_for=3, style="http_429"))
    video_id = NORMAL[0].video.video_id
    fetch(server, video_id)  # t=0
    clock.advance(1)
    fetch(server, video_id)  # t=1
    clock.advance(1)
    assert type(failure(server, video_id)) is BlockedError  # t=2: third video in 10 s, blocked until t=5
    clock.advance(4)
    assert type(failure(server, video_id)) is BlockedError  # t=6: block over, window still full
    clock.advance(5.5)
    assert fetch(server, video_id).transcript.segments  # t=11.5: both served videos left the window
    assert server.stats()["exits"][EXIT_A]["blocks"]["http_429"] == 2


def test_cycle_takes_the_next_block_style_each_time(
    server: FakeYouTube, route: Route, clock: ManualClock
) -> None:
    server.configure(limit=Limit(videos=1, window=1, block_for=1, style="cycle"))
    video_id = NORMAL[0].video.video_id
    for _ in BLOCK_STYLES:
        fetch(server, video_id)
        assert type(failure(server, video_id)) is BlockedError
        clock.advance(2)
    assert server.stats()["exits"][EXIT_A]["blocks"] == dict.fromkeys(BLOCK_STYLES, 1)


def test_latency_is_applied_to_every_request(server: FakeYouTube, route: Route) -> None:
    server.configure(latency=0.15)
    started = time.monotonic()
    fetch(server, NORMAL[0].video.video_id)
    assert time.monotonic() - started >= 3 * 0.15


def test_tls_is_verified_against_the_test_ca(server: FakeYouTube, route: Route) -> None:
    caught = failure_without_bundle(server, NORMAL[0].video.video_id)
    assert type(caught) is TransientError
    assert "TLS" in caught.reason
    assert wait_for(lambda: server.stats()["tls_failures"]) == [
        {"peer": "127.0.0.1", "local": EXIT_A, "count": 1}
    ]
    video_url = f"https://www.youtube.com/watch?v={NORMAL[0].video.video_id}"
    with new_session(ca_bundle=server.ca_bundle) as session:
        for name in CERT_NAMES:
            answer = session.get(f"https://{name}/oembed", params={"url": video_url})
            assert answer.json()["title"] == NORMAL[0].video.title


def wait_for(read: Callable[[], T], timeout: float = 5.0) -> T:
    """The first truthy value `read` returns within `timeout` seconds (the server records after answering)."""
    deadline = time.monotonic() + timeout
    value = read()
    while not value and time.monotonic() < deadline:
        time.sleep(0.01)
        value = read()
    return value


def failure_without_bundle(server: FakeYouTube, video_id: str) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch(server, video_id, ca_bundle=None)
    return caught.value


def test_control_endpoint_reports_configures_and_resets(server: FakeYouTube, route: Route) -> None:
    fetch(server, NORMAL[0].video.video_id)
    with new_session() as control:
        assert control.get(f"{server.control_url}/stats").json() == server.stats()
        limit = {"videos": 1, "window": 5.0, "block_for": 2.0, "style": "recaptcha"}
        site = {"manual_po_tokens": True, "broken_formats": ["json3"]}
        answer = control.post(
            f"{server.control_url}/configure",
            json={"latency": 0.01, "exit_limits": {EXIT_B: limit}, "site": site},
        )
        expected = {"latency": 0.01, "limit": None, "exit_limits": {EXIT_B: limit}, "site": site}
        assert answer.json()["settings"] == expected
        assert (
            control.post(f"{server.control_url}/configure", json={"limit": {"style": "x"}}).status_code == 400
        )
        assert control.post(f"{server.control_url}/configure", json={"speed": 1}).status_code == 400
        assert control.get(f"{server.control_url}/nothing").status_code == 404
        reset = control.post(f"{server.control_url}/reset").json()
        assert reset["timeline"] == []
        assert reset["exits"][EXIT_A]["requests"]["watch"] == 0
        assert reset["settings"]["exit_limits"] == {EXIT_B: limit}


def test_command_line_serves_until_terminated(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tests.bed.youtube_server", "--addresses", "127.0.0.13", "--port", "0"]
    command += ["--ca-out", str(tmp_path), "--limit", "3/60/30/cycle"]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], 20)
            assert ready, "the server did not report that it is ready"
            info = json.loads(process.stdout.readline())
            assert Path(info["ca_bundle"]) == tmp_path / "youtube-ca.pem"
            assert info["addresses"] == ["127.0.0.13"]
            with new_session() as control:
                settings = control.get(f"{info['control_url']}/stats").json()["settings"]
            assert settings["limit"] == {"videos": 3, "window": 60.0, "block_for": 30.0, "style": "cycle"}
        finally:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_captions_as_json3_or_vtt_and_po_tokens_for_marked_tracks(server: FakeYouTube, route: Route) -> None:
    entry, marked = NORMAL[0], of_case("po_token_required")
    captions = "https://www.youtube.com/api/timedtext?v={}&lang=en"
    texts = [html.unescape(text) for _, _, text in entry.video.segments]
    with new_session(ca_bundle=server.ca_bundle) as session:
        events = session.get(captions.format(entry.video.video_id) + "&fmt=json3").json()["events"]
        assert ["".join(seg["utf8"] for seg in event["segs"]) for event in events] == texts
        vtt = session.get(captions.format(entry.video.video_id) + "&fmt=vtt").text
        assert vtt.startswith("WEBVTT") and vtt.count(" --> ") == len(texts)
        pot_url = captions.format(marked.video.video_id) + "&exp=xpe"
        assert session.get(pot_url).text == ""
        assert session.get(f"{pot_url}&pot={make_token('someOtherVid')}").text == ""
        assert "<transcript>" in session.get(f"{pot_url}&pot={make_token(marked.video.video_id)}").text
        server.configure(site=SiteOptions(manual_po_tokens=True, broken_formats=frozenset({"json3"})))
        body = {"videoId": entry.video.video_id, "context": {"client": {"clientName": "WEB"}}}
        player = session.post("https://www.youtube.com/youtubei/v1/player", json=body).json()  # no key
        tracks = player["captions"]["playerCaptionsTracklistRenderer"]["captionTracks"]
        assert all("exp=xpe" in track["baseUrl"] for track in tracks if track.get("kind") != "asr")
        with pytest.raises(ValueError):
            session.get(captions.format(entry.video.video_id) + "&fmt=json3").json()
        session.get(f"https://www.youtube.com/watch?v={entry.video.video_id}", cookies={"SID": "secret"})
    assert server.stats()["cookies"] == [{"exit": EXIT_A, "name": "SID", "count": 1}]
