"""yt-dlp's subtitle path: its parsers and track choice, then the real yt-dlp through the bed's proxies to the
fake YouTube, with the fake bgutil PO token provider reached through the real plugin."""

from __future__ import annotations

import dataclasses
import html
import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from studybuddy.egress.sessions import new_session
from studybuddy.errors import BlockedError, PermanentError, TransientError
from studybuddy.models import Segment
from studybuddy.proxyspec import ProxySpec, parse_proxy
from studybuddy.youtube.transcripts import SubtitleOptions, TranscriptFetcher
from studybuddy.youtube.ytdlp_common import YtDlpLogger
from studybuddy.youtube.ytdlp_subtitles import (
    JS_RUNTIME_HINT,
    SubtitleFetcher,
    classify,
    parse_json3,
    parse_vtt,
    tracks_of,
)
from tests.bed.proxies import FakeProxy, ProxyBed
from tests.bed.youtube_server import FakeYouTube, Limit
from tests.bed.youtube_site import CatalogueVideo, SiteOptions, load_catalogue
from tests.fakes import youtube_pages as yt
from tests.fakes.pot_provider import FakePotProvider

CATALOGUE = load_catalogue()
NORMAL = [entry for entry in CATALOGUE.values() if entry.case == "normal"]
MANUAL = [entry for entry in NORMAL if not entry.video.tracks[0].generated]
SPECIAL = {entry.case: entry for entry in CATALOGUE.values()}
SEGMENTS = ((0.0, 1.5, "Hello &amp; welcome"), (1.5, 2.25, "to &lt;b&gt;onion&lt;/b&gt;\nrouting"))


def expected(entry: CatalogueVideo, prefix: str = "") -> tuple[Segment, ...]:
    return tuple(
        Segment(start, duration, prefix + html.unescape(text))
        for start, duration, text in entry.video.segments
    )


# -- parsers and tracks ----------------------------------------------------------------------------------


def test_json3_manual_and_generated_tracks() -> None:
    want = (Segment(0.0, 1.5, "Hello & welcome"), Segment(1.5, 2.25, "to <b>onion</b>\nrouting"))
    assert parse_json3(yt.caption_json3(SEGMENTS)) == want
    assert (
        parse_json3(yt.caption_json3(SEGMENTS, generated=True)) == want
    )  # words joined, line breaks skipped
    assert parse_json3("") == ()
    for broken in ('{"events": 3}', "[1, 2]", '{"events": [{"tStartMs": "x", "segs": [{"utf8": "a"}]}]}'):
        with pytest.raises(ValueError):
            parse_json3(broken)


def test_vtt_with_tags_entities_and_rolling_lines() -> None:
    assert parse_vtt(yt.caption_vtt(SEGMENTS)) == (
        Segment(0.0, 1.5, "Hello & welcome"),
        Segment(1.5, 2.25, "to <b>onion</b>\nrouting"),
    )
    rolling = (
        "WEBVTT\nKind: captions\n\n"
        "00:00:01.000 --> 00:00:03.000 align:start position:0%\n"
        "so<00:00:01.500><c> today</c><00:00:02.000><c> we</c>\n\n"
        "00:00:03.000 --> 00:00:03.010\nso today we\n\n"
        "01:02:03.000 --> 01:02:05.500\nso today we\nlook at circuits\n"
    )
    assert parse_vtt(rolling, rolling=True) == (
        Segment(1.0, 2.0, "so today we"),
        Segment(3723.0, 2.5, "look at circuits"),
    )
    with pytest.raises(ValueError):
        parse_vtt('{"events": []}')


def test_tracks_are_read_from_the_urls_manual_first_translations_left_out() -> None:
    base = "https://www.youtube.com/api/timedtext?v=vid&lang={}{}&fmt={}"
    info = {
        "subtitles": {"fr": [{"ext": "json3", "url": base.format("fr", "", "json3"), "name": "French"}]},
        "automatic_captions": {
            "en-orig": [
                {
                    "ext": "json3",
                    "url": base.format("en", "&kind=asr", "json3"),
                    "name": "English (Original)",
                },
                {"ext": "vtt", "url": base.format("en", "&kind=asr", "vtt"), "name": "English (Original)"},
            ],
            "de": [
                {"ext": "json3", "url": base.format("en", "&kind=asr&tlang=de", "json3"), "name": "German"}
            ],
        },
    }
    tracks = tracks_of(info)
    assert [(t.language_code, t.name, t.generated, sorted(t.urls)) for t in tracks] == [
        ("fr", "French", False, ["json3"]),
        ("en", "English", True, ["json3", "vtt"]),
    ]
    assert tracks_of({}) == []


def test_errors_become_the_pipeline_kinds_without_secrets() -> None:
    from yt_dlp.networking.common import Response
    from yt_dlp.networking.exceptions import HTTPError, TransportError
    from yt_dlp.utils import DownloadError, ExtractorError

    logger = YtDlpLogger(["hunter2"])

    def wrapped(error: Exception) -> DownloadError:
        try:
            raise error
        except Exception:
            return DownloadError(f"ERROR: {error}", sys.exc_info())

    bot = ExtractorError("Sign in to confirm you’re not a bot. Use --cookies", expected=True)
    assert isinstance(classify("v", wrapped(bot), logger), BlockedError)
    for status, kind in (
        (403, BlockedError),
        (429, BlockedError),
        (503, TransientError),
        (404, PermanentError),
    ):
        http = HTTPError(
            Response(io.BytesIO(b""), "https://www.youtube.com/api/timedtext", {}, status=status)
        )
        assert type(classify("v", ExtractorError("Unable to download", cause=http), logger)) is kind
    network = ExtractorError(
        "Unable to download webpage", cause=TransportError("proxy socks5h://u:hunter2@h:1")
    )
    assert isinstance(classify("v", network, logger), TransientError)
    gone = classify("v", wrapped(ExtractorError("Video unavailable", expected=True)), logger)
    assert (type(gone), gone.reason) == (PermanentError, "video is unavailable")
    other = classify(
        "v", ExtractorError("odd: via http://u:hunter2@proxy:1 something", expected=True), logger
    )
    assert "hunter2" not in other.reason and other.reason.startswith("yt-dlp: odd")
    logger.warning(
        "[youtube] v: n challenge solving failed: Some formats may be missing. Ensure you have a "
        "supported JavaScript runtime"
    )
    runtime = classify("v", ExtractorError("Requested format is not available", expected=True), logger)
    assert runtime.reason == JS_RUNTIME_HINT and "deno" in runtime.reason and "node" in runtime.reason


# -- the real yt-dlp on the bed --------------------------------------------------------------------------


@pytest.fixture
def bed(fake_youtube: FakeYouTube, fake_proxies: ProxyBed) -> tuple[FakeYouTube, ProxyBed]:
    return fake_youtube, fake_proxies


def fetcher(youtube: FakeYouTube, proxy: ProxySpec, **options: object) -> SubtitleFetcher:
    session = new_session(egress=proxy, ca_bundle=youtube.ca_bundle)
    return SubtitleFetcher(session, **options)  # type: ignore[arg-type]


@pytest.fixture
def subtitles(bed: tuple[FakeYouTube, ProxyBed]) -> Iterator[SubtitleFetcher]:
    youtube, proxies = bed
    made = fetcher(youtube, parse_proxy(proxies.http.url()))
    yield made
    made.close()


def requests_by_exit(youtube: FakeYouTube) -> dict[str, dict[str, int]]:
    return {
        address: {kind: count for kind, count in data["requests"].items() if count}
        for address, data in youtube.stats()["exits"].items()
        if any(data["requests"].values())
    }


@pytest.mark.parametrize("which", ["socks", "http", "https", "rotating"])
def test_subtitles_in_two_requests_through_each_kind_of_proxy(
    bed: tuple[FakeYouTube, ProxyBed], which: str, caplog: pytest.LogCaptureFixture
) -> None:
    youtube, proxies = bed
    proxy: FakeProxy = getattr(proxies, which)
    caplog.set_level(logging.DEBUG, logger="studybuddy")
    made = fetcher(youtube, parse_proxy(proxy.url(), rotating=proxy.rotating))
    try:
        entries = MANUAL[:2]
        results = [made.fetch(entry.video.video_id) for entry in entries]
    finally:
        made.close()
    for entry, result in zip(entries, results, strict=True):
        assert result.transcript.segments == expected(entry)
        assert (result.transcript.language, result.transcript.is_generated) == ("English", False)
        assert (result.meta.title, result.meta.channel) == (entry.video.title, entry.video.channel)
        assert result.requests == 2
    seen = requests_by_exit(youtube)
    assert set(seen) <= set(proxy.sources)  # every request left from this proxy's own address(es)
    assert sum(counts.get("watch", 0) for counts in seen.values()) == 2
    assert sum(counts.get("captions", 0) for counts in seen.values()) == 2
    assert sum(sum(counts.values()) for counts in seen.values()) == 4
    if proxy.credentials:
        assert proxy.credentials[1] not in caplog.text


def test_a_po_token_from_the_provider_unlocks_marked_tracks(
    bed: tuple[FakeYouTube, ProxyBed], fake_pot_provider: FakePotProvider
) -> None:
    youtube, proxies = bed
    entry = SPECIAL["po_token_required"]
    made = fetcher(youtube, parse_proxy(proxies.socks.url()), pot_provider=fake_pot_provider.url)
    try:
        result = made.fetch(entry.video.video_id)
    finally:
        made.close()
    assert result.transcript.segments == expected(entry) and result.requests == 2
    assert fake_pot_provider.bindings() == [entry.video.video_id]  # the subtitles token is bound to the video
    assert fake_pot_provider.requests[0].client == "WEB" and fake_pot_provider.requests[0].with_proxy


def test_without_a_po_token_the_reason_says_what_to_do(subtitles: SubtitleFetcher) -> None:
    with pytest.raises(PermanentError) as caught:
        subtitles.fetch(SPECIAL["po_token_required"].video.video_id)
    assert caught.value.reason == (
        "no subtitles in en: YouTube requires a PO token; run a PO token provider and pass --pot-provider URL"
    )


def test_languages_translation_and_generated_tracks(bed: tuple[FakeYouTube, ProxyBed]) -> None:
    youtube, proxies = bed
    spec = parse_proxy(proxies.http.url())
    two_languages = next(entry for entry in MANUAL if len(entry.video.tracks) > 1)
    generated = next(entry for entry in NORMAL if entry.video.tracks[0].generated)
    french = fetcher(youtube, spec, languages=("fr",))
    german = fetcher(youtube, spec, languages=("en",), translate_to="de")
    try:
        in_french = french.fetch(two_languages.video.video_id).transcript
        asr = french.fetch(generated.video.video_id).transcript  # no French: the spoken one, translated
        translated = german.fetch(MANUAL[0].video.video_id).transcript
    finally:
        french.close()
        german.close()
    assert (in_french.language_code, in_french.translated_from) == ("fr", None)
    assert in_french.segments == expected(two_languages)
    assert (asr.language_code, asr.is_generated, asr.translated_from) == ("fr", True, "en")
    assert asr.segments == expected(generated, "[fr] ")
    assert (translated.language, translated.language_code, translated.translated_from) == (
        "German",
        "de",
        "en",
    )
    assert translated.segments == expected(MANUAL[0], "[de] ")


def test_vtt_when_json3_is_unreadable(bed: tuple[FakeYouTube, ProxyBed], subtitles: SubtitleFetcher) -> None:
    youtube, _ = bed
    youtube.configure(site=SiteOptions(broken_formats=frozenset({"json3"})))
    result = subtitles.fetch(MANUAL[0].video.video_id)
    assert result.transcript.segments == expected(MANUAL[0]) and result.requests == 3
    youtube.configure(site=SiteOptions(broken_formats=frozenset({"json3", "vtt"})))
    with pytest.raises(TransientError, match="unreadable vtt subtitles"):
        subtitles.fetch(MANUAL[1].video.video_id)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unavailable", "video is unavailable"),
        ("age_restricted", "age restricted"),
        ("transcripts_disabled", "no subtitles (transcripts are disabled or none are offered)"),
    ],
)
def test_videos_without_subtitles_fail_permanently(
    subtitles: SubtitleFetcher, case: str, reason: str
) -> None:
    with pytest.raises(PermanentError) as caught:
        subtitles.fetch(SPECIAL[case].video.video_id)
    assert caught.value.reason == reason


@pytest.mark.parametrize("style", ["bot_check", "http_429", "recaptcha"])
def test_a_blocked_proxy_is_a_block(
    bed: tuple[FakeYouTube, ProxyBed], subtitles: SubtitleFetcher, style: str
) -> None:
    youtube, proxies = bed
    youtube.configure(
        exit_limits={proxies.http.sources[0]: Limit(videos=0, window=60, block_for=60, style=style)}
    )
    with pytest.raises(BlockedError):
        subtitles.fetch(MANUAL[0].video.video_id)


def test_cookies_travel_only_with_the_workers_identity_and_the_file_stays_as_it_was(
    bed: tuple[FakeYouTube, ProxyBed], tmp_path: Path
) -> None:
    youtube, proxies = bed
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(
        "# Netscape HTTP Cookie File\n.youtube.com\tTRUE\t/\tTRUE\t1893456000\tSID\tsecret-sid\n"
    )
    before = cookies.read_bytes()
    made = fetcher(youtube, parse_proxy(proxies.socks.url()), cookies=cookies)
    try:
        made.fetch(MANUAL[0].video.video_id)
    finally:
        made.close()
    carried = {(item["exit"], item["name"]) for item in youtube.stats()["cookies"]}
    assert (proxies.socks.sources[0], "SID") in carried  # with yt-dlp's own consent cookies
    assert {exit_ for exit_, _name in carried} == {proxies.socks.sources[0]}
    assert cookies.read_bytes() == before


def test_the_transcript_fetcher_falls_back_to_ytdlp_or_starts_with_it(
    bed: tuple[FakeYouTube, ProxyBed], fake_pot_provider: FakePotProvider
) -> None:
    youtube, proxies = bed
    youtube.configure(site=SiteOptions(manual_po_tokens=True))
    entry = MANUAL[0]
    options = SubtitleOptions("api", fake_pot_provider.url)
    for first, requests in (("api", 4), ("ytdlp", 2)):
        youtube.reset()
        session = new_session(egress=parse_proxy(proxies.http.url()), ca_bundle=youtube.ca_bundle)
        fetcher = TranscriptFetcher(session, subtitles=dataclasses.replace(options, first=first))
        try:
            result = fetcher.fetch(entry.video.video_id)
        finally:
            fetcher.close()
        assert result.transcript.segments == expected(entry)
        assert (result.meta.title, result.meta.channel) == (entry.video.title, entry.video.channel)
        assert result.meta.duration == entry.video.length_seconds
        counts = youtube.stats()["exits"][proxies.http.sources[0]]["requests"]
        assert sum(counts.values()) == requests, counts  # api: watch + player; yt-dlp: watch + captions
