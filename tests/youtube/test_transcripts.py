"""TranscriptFetcher against a faked YouTube (`responses`): choice of track, error kinds, metadata."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
import socks
from responses import matchers
from youtube_transcript_api import (
    InvalidVideoId,
    NotTranslatable,
    TranslationLanguageNotAvailable,
    YouTubeRequestFailed,
)

from studybuddy.egress.sessions import new_session
from studybuddy.errors import (
    BlockedError,
    BugError,
    ErrorKind,
    FetchError,
    GeoBlockedError,
    PermanentError,
    TransientError,
)
from studybuddy.models import Chapter, Segment
from studybuddy.youtube.transcripts import TranscriptFetcher, classify
from tests.fakes import youtube_pages as yt
from tests.fakes.youtube_pages import FakeTrack, FakeVideo

VIDEO = FakeVideo()
UNREADABLE = "unreadable response from YouTube"
CAPTIONS = re.compile(r"https://www\.youtube\.com/api/timedtext\?.*")
PLAYER = re.compile(r"https://www\.youtube\.com/youtubei/v1/player\?.*")  # yt-dlp sends no key
OEMBED = "https://www.youtube.com/oembed"


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as requests_mock:
        yield requests_mock


def register(
    mock: responses.RequestsMock,
    video: FakeVideo = VIDEO,
    *,
    page: str | None = None,
    player: dict[str, Any] | None = None,
    player_status: int = 200,
    captions_status: int = 200,
) -> None:
    """The three requests of a fetch: watch page, player POST, caption track (any language)."""
    mock.get(
        "https://www.youtube.com/watch",
        body=yt.watch_page(video) if page is None else page,
        content_type="text/html; charset=utf-8",
        match=[matchers.query_param_matcher({"v": video.video_id}, strict_match=False)],  # yt-dlp adds some
    )
    mock.post(PLAYER, json=yt.player_response(video) if player is None else player, status=player_status)
    mock.get(CAPTIONS, body=yt.caption_xml(video.segments), status=captions_status, content_type="text/xml")


def caption_query(mock: responses.RequestsMock) -> dict[str, list[str]]:
    """The query of the caption request that was made."""
    urls = [call.request.url for call in mock.calls if "/api/timedtext" in str(call.request.url)]
    assert len(urls) == 1
    return parse_qs(urlsplit(str(urls[0])).query)


def fetch(video: FakeVideo = VIDEO, **options: Any) -> Any:
    fetcher = TranscriptFetcher(new_session(), **{"use_ytdlp": False, **options})
    try:
        return fetcher.fetch(video.video_id)
    finally:
        fetcher.close()


def fetch_error(video: FakeVideo = VIDEO, **options: Any) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch(video, **options)
    assert "\n" not in str(caught.value)
    assert str(caught.value) == f"{video.video_id}: {caught.value.reason}"
    return caught.value


# --- success ---------------------------------------------------------------------------------------------


def test_fetch_returns_transcript_and_metadata_in_three_requests(mock: responses.RequestsMock) -> None:
    register(mock)

    result = fetch()

    assert len(mock.calls) == 3
    transcript = result.transcript
    assert transcript.video_id == VIDEO.video_id
    assert (transcript.language, transcript.language_code) == ("English", "en")
    assert transcript.is_generated is False
    assert transcript.translated_from is None
    assert transcript.segments == (
        Segment(0.0, 1.5, "Hello & welcome"),
        Segment(1.5, 2.25, "to onion routing"),
    )
    meta = result.meta
    assert meta.title == VIDEO.title
    assert meta.channel == VIDEO.channel
    assert meta.duration == 754.0
    assert meta.upload_date == "2024-03-05"  # only in the watch page's microformat
    assert meta.description == VIDEO.description
    assert meta.tags == VIDEO.keywords
    assert meta.chapters == (Chapter(0.0, "Intro"), Chapter(65.5, "Building a circuit"))


def test_chapters_from_macro_markers(mock: responses.RequestsMock) -> None:
    register(mock, page=yt.watch_page(VIDEO, chapter_style="panel"))

    assert fetch().meta.chapters == (Chapter(0.0, "Intro"), Chapter(65.0, "Building a circuit"))


def test_title_from_watch_page_when_player_has_no_details(mock: responses.RequestsMock) -> None:
    register(mock, player=yt.player_response(VIDEO, with_details=False))

    meta = fetch().meta

    assert (meta.title, meta.channel, meta.duration) == (VIDEO.title, VIDEO.channel, 754.0)
    assert len(mock.calls) == 3


def test_recorded_pages_are_dropped_after_each_fetch(mock: responses.RequestsMock) -> None:
    other = dataclasses.replace(VIDEO, video_id="other_video", title="Another talk")
    register(mock)
    register(mock, other, player=yt.player_response(other, with_details=False))
    fetcher = TranscriptFetcher(new_session(), use_ytdlp=False)

    assert fetcher.fetch(VIDEO.video_id).meta.title == VIDEO.title
    assert fetcher.fetch(other.video_id).meta.title == "Another talk"
    fetcher.close()


def test_close_detaches_the_response_hook() -> None:
    session = new_session()
    fetcher = TranscriptFetcher(session)

    assert len(session.hooks["response"]) == 1
    fetcher.close()
    assert session.hooks["response"] == []


def test_an_id_that_is_not_a_video_id_is_refused_before_any_request_or_file(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    fetcher = TranscriptFetcher(new_session(), use_ytdlp=False, debug_dir=tmp_path / "debug")

    with pytest.raises(PermanentError, match=r"^\.\./\.\./x: not a YouTube video id$"):
        fetcher.fetch("../../x")

    assert len(mock.calls) == 0
    assert list(tmp_path.rglob("*")) == []


def test_a_single_language_string_is_one_language(mock: responses.RequestsMock) -> None:
    video = dataclasses.replace(VIDEO, tracks=(FakeTrack("de", "Deutsch"),))
    register(mock, video)

    assert fetch(video, languages="de").transcript.language_code == "de"


def test_languages_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="languages"):
        TranscriptFetcher(new_session(), languages=())


# --- choice of track ---------------------------------------------------------------------------------------

MULTILINGUAL = dataclasses.replace(
    VIDEO,
    tracks=(
        FakeTrack("en", "English (auto-generated)", generated=True),
        FakeTrack("de", "Deutsch"),
        FakeTrack("en", "English"),
    ),
)


@pytest.mark.parametrize(
    ("languages", "expected_lang", "expected_kind"),
    [
        (("de", "en"), "de", None),
        (("en", "de"), "en", None),  # the manual English track before the generated one
        (("fr", "de"), "de", None),
    ],
)
def test_languages_in_order_of_preference(
    mock: responses.RequestsMock, languages: tuple[str, ...], expected_lang: str, expected_kind: str | None
) -> None:
    register(mock, MULTILINGUAL)

    transcript = fetch(MULTILINGUAL, languages=languages).transcript

    assert transcript.language_code == expected_lang
    assert transcript.is_generated is False
    query = caption_query(mock)
    assert query["lang"] == [expected_lang]
    assert query.get("kind") == expected_kind
    assert "tlang" not in query


def test_generated_track_when_no_manual_one(mock: responses.RequestsMock) -> None:
    video = dataclasses.replace(VIDEO, tracks=(FakeTrack("en", "English (auto-generated)", generated=True),))
    register(mock, video)

    transcript = fetch(video).transcript

    assert transcript.is_generated is True
    assert caption_query(mock)["kind"] == ["asr"]


def test_translate_to_translates_the_chosen_track(mock: responses.RequestsMock) -> None:
    video = dataclasses.replace(VIDEO, tracks=(FakeTrack("fr", "Français"),))
    register(mock, video)

    transcript = fetch(video, languages=("fr",), translate_to="de").transcript

    assert (transcript.language_code, transcript.language, transcript.translated_from) == (
        "de",
        "German",
        "fr",
    )
    query = caption_query(mock)
    assert (query["lang"], query["tlang"]) == (["fr"], ["de"])
    assert len(mock.calls) == 3


def test_translate_to_prefers_an_original_in_that_language(mock: responses.RequestsMock) -> None:
    register(mock, MULTILINGUAL)

    transcript = fetch(MULTILINGUAL, languages=("de",), translate_to="en").transcript

    assert (transcript.language_code, transcript.translated_from) == ("en", None)
    assert "tlang" not in caption_query(mock)


def test_missing_language_is_translated_from_an_available_track(mock: responses.RequestsMock) -> None:
    video = dataclasses.replace(VIDEO, tracks=(FakeTrack("fr", "Français"),))
    register(mock, video)

    transcript = fetch(video, languages=("en", "de")).transcript

    assert (transcript.language_code, transcript.translated_from) == ("en", "fr")
    assert caption_query(mock)["tlang"] == ["en"]


SPOKEN_ENGLISH = dataclasses.replace(
    VIDEO,
    tracks=(
        FakeTrack("zh-Hans", "Chinese (Simplified)"),
        FakeTrack("de", "Deutsch"),
        FakeTrack("en", "English (auto-generated)", generated=True),
    ),
    translation_languages=(("en", "English"), ("de", "German"), ("nl", "Dutch")),
)


@pytest.mark.parametrize(
    ("source", "expected_query"),
    [
        (2, {"lang": ["en"], "kind": ["asr"], "tlang": ["nl"]}),  # YouTube's choice: the spoken language
        (1, {"lang": ["de"], "tlang": ["nl"]}),  # whatever YouTube names
        (None, {"lang": ["en"], "kind": ["asr"], "tlang": ["nl"]}),  # not named: the automatic track
    ],
    ids=["named-automatic", "named-manual", "not-named"],
)
def test_a_translation_comes_from_the_track_youtube_names_else_the_spoken_language(
    mock: responses.RequestsMock, source: int | None, expected_query: dict[str, list[str]]
) -> None:
    video = dataclasses.replace(SPOKEN_ENGLISH, translation_source=source)
    register(mock, video)

    transcript = fetch(video, languages=("nl",)).transcript

    assert (transcript.language_code, transcript.translated_from) == ("nl", expected_query["lang"][0])
    query = caption_query(mock)
    assert {key: query[key] for key in ("lang", "kind", "tlang") if key in query} == expected_query


def test_without_youtubes_choice_or_a_translatable_automatic_track_the_first_translatable_one_is_used(
    mock: responses.RequestsMock,
) -> None:
    tracks = (
        *SPOKEN_ENGLISH.tracks[:2],
        FakeTrack("en", "English (auto)", generated=True, translatable=False),
    )
    video = dataclasses.replace(SPOKEN_ENGLISH, tracks=tracks, translation_source=None)
    register(mock, video)

    transcript = fetch(video, languages=("nl",)).transcript

    assert transcript.translated_from == "zh-Hans"


def test_no_transcript_names_wanted_and_available_languages(mock: responses.RequestsMock) -> None:
    video = dataclasses.replace(VIDEO, tracks=(FakeTrack("fr", "Français", translatable=False),))
    register(mock, video)

    error = fetch_error(video, languages=("en", "de"))

    assert isinstance(error, PermanentError)
    assert error.reason == "no transcript in en, de (available: fr)"
    assert len(mock.calls) == 2  # no caption request


def test_untranslatable_track_is_permanent(mock: responses.RequestsMock) -> None:
    video = dataclasses.replace(VIDEO, tracks=(FakeTrack("fr", "Français", translatable=False),))
    register(mock, video)

    error = fetch_error(video, languages=("fr",), translate_to="en")

    assert (error.kind, error.reason) == (ErrorKind.PERMANENT, "transcript cannot be translated")


# --- error kinds, end to end -------------------------------------------------------------------------------


def playing(playability: dict[str, Any], **changes: Any) -> FakeVideo:
    return dataclasses.replace(VIDEO, playability=playability, **changes)


@pytest.mark.parametrize(
    ("video", "error_type", "reason"),
    [
        (playing(yt.BOT_CHECK), BlockedError, "blocked by YouTube (bot check)"),
        (
            playing({"status": "LOGIN_REQUIRED", "reason": "Sign in to confirm you're not a bot"}),
            BlockedError,
            "blocked by YouTube (bot check)",
        ),
        (playing(yt.AGE_RESTRICTED), PermanentError, "age restricted"),
        (playing(yt.UNAVAILABLE), PermanentError, "video is unavailable"),
        (
            playing({"status": "ERROR", "reason": "Private video\n  "}),
            PermanentError,
            "video is unplayable: Private video",
        ),
        (playing(yt.PLAYABLE, tracks=()), PermanentError, "transcripts are disabled"),
        (
            playing(yt.GEO_BLOCKED, tracks=()),
            GeoBlockedError,
            f"video is unplayable: Video unavailable. {yt.GEO_BLOCK_REASON}",
        ),
        (
            playing({"status": "UNPLAYABLE", "reason": f"{yt.GEO_BLOCK_REASON}."}, tracks=()),
            GeoBlockedError,
            f"video is unplayable: {yt.GEO_BLOCK_REASON}",
        ),
    ],
    ids=[
        "bot-check",
        "bot-check-ascii-apostrophe",
        "age",
        "unavailable",
        "unplayable",
        "disabled",
        "geo-blocked",
        "geo-blocked-in-the-reason",
    ],
)
def test_playability_errors(
    mock: responses.RequestsMock, video: FakeVideo, error_type: type[FetchError], reason: str
) -> None:
    register(mock, video)

    error = fetch_error(video)

    assert type(error) is error_type
    assert error.reason == reason
    assert error.video_id == video.video_id


def test_po_token_required_is_permanent_without_a_caption_request(mock: responses.RequestsMock) -> None:
    video = dataclasses.replace(VIDEO, tracks=(FakeTrack("en", "English", po_token_required=True),))
    register(mock, video)

    error = fetch_error(video)

    assert isinstance(error, PermanentError)
    assert error.reason.endswith(
        "YouTube requires a PO token; run a PO token provider and pass --pot-provider URL"
    )
    youtube = [str(call.request.url) for call in mock.calls if "youtube.com" in str(call.request.url)]
    assert len(youtube) == 3  # the library's watch page and player answer, yt-dlp's player answer
    assert not any("/api/timedtext" in url for url in youtube)  # no caption request without a token


@pytest.mark.parametrize(
    ("code", "name", "translate_to", "expected"),
    [
        ("en", "English", None, {"lang": ["en"], "kind": ["asr"]}),
        ("fr", "Français", "de", {"lang": ["fr"], "kind": ["asr"], "tlang": ["de"]}),  # translated alike
    ],
)
def test_po_token_on_the_manual_track_falls_back_to_the_automatic_track_of_its_language(
    mock: responses.RequestsMock,
    code: str,
    name: str,
    translate_to: str | None,
    expected: dict[str, list[str]],
) -> None:
    tracks = (
        FakeTrack(code, name, po_token_required=True),
        FakeTrack(code, f"{name} (auto)", generated=True),
    )
    video = dataclasses.replace(VIDEO, tracks=tracks)
    register(mock, video)

    transcript = fetch(video, languages=(code,), translate_to=translate_to).transcript

    assert (transcript.language_code, transcript.is_generated) == (translate_to or code, True)
    assert transcript.translated_from == (code if translate_to else None)
    assert transcript.fallback_reason == f"the {name} captions need a PO token"
    query = caption_query(mock)
    assert {key: query[key] for key in ("lang", "kind", "tlang", "exp") if key in query} == expected


def test_po_token_on_both_tracks_of_a_language_is_permanent(mock: responses.RequestsMock) -> None:
    tracks = (
        FakeTrack("en", "English", po_token_required=True),
        FakeTrack("en", "English (auto-generated)", generated=True, po_token_required=True),
    )
    video = dataclasses.replace(VIDEO, tracks=tracks)
    register(mock, video)

    error = fetch_error(video)

    assert isinstance(error, PermanentError) and "PO token" in error.reason
    youtube = [str(call.request.url) for call in mock.calls if "youtube.com" in str(call.request.url)]
    assert len(youtube) == 3 and not any("/api/timedtext" in url for url in youtube)  # yt-dlp tried too


@pytest.mark.parametrize(
    ("page", "error_type", "reason"),
    [
        (yt.recaptcha_page(), BlockedError, "blocked by YouTube (rate limit or reCAPTCHA)"),
        (yt.consent_page(), BlockedError, "stuck on YouTube's cookie consent page"),
        (yt.watch_page(VIDEO, api_key=None), TransientError, "YouTube sent a page that could not be read"),
    ],
    ids=["recaptcha", "consent", "no-innertube-key"],
)
def test_watch_page_errors(
    mock: responses.RequestsMock, page: str, error_type: type[FetchError], reason: str
) -> None:
    register(mock, page=page)

    error = fetch_error()

    assert (type(error), error.reason) == (error_type, reason)


@pytest.mark.parametrize(
    ("step", "status", "error_type", "reason"),
    [
        ("watch", 429, BlockedError, "blocked by YouTube (rate limit or reCAPTCHA)"),
        ("player", 429, BlockedError, "blocked by YouTube (rate limit or reCAPTCHA)"),
        ("captions", 429, BlockedError, "blocked by YouTube (rate limit or reCAPTCHA)"),
        ("watch", 500, TransientError, "YouTube answered HTTP 500"),
        ("player", 503, TransientError, "YouTube answered HTTP 503"),
        ("captions", 502, TransientError, "YouTube answered HTTP 502"),
        ("watch", 403, BlockedError, "refused by YouTube (HTTP 403)"),
        ("player", 403, BlockedError, "refused by YouTube (HTTP 403)"),
        ("captions", 403, BlockedError, "refused by YouTube (HTTP 403)"),
        ("watch", 404, PermanentError, "YouTube answered HTTP 404"),
        ("player", 400, PermanentError, "YouTube answered HTTP 400"),
    ],
)
def test_http_status_errors(
    mock: responses.RequestsMock, step: str, status: int, error_type: type[FetchError], reason: str
) -> None:
    if step == "watch":
        mock.get("https://www.youtube.com/watch", status=status, body="")
    register(
        mock,
        player_status=status if step == "player" else 200,
        captions_status=status if step == "captions" else 200,
    )

    error = fetch_error()

    assert (type(error), error.reason) == (error_type, reason)


@pytest.mark.parametrize(
    ("raised", "reason"),
    [
        (requests.ConnectionError("Connection refused"), "connection failed"),
        (requests.exceptions.ConnectTimeout("connect timed out"), "timed out"),
        (requests.exceptions.ReadTimeout("read timed out"), "timed out"),
        (requests.exceptions.ProxyError("Unable to connect to proxy"), "could not connect through the proxy"),
        (requests.exceptions.SSLError("certificate verify failed"), "TLS connection failed"),
        (requests.exceptions.ChunkedEncodingError("connection broken"), "network error"),
        (socks.GeneralProxyError("Socket error: 0x01: General SOCKS server failure"), "SOCKS proxy error"),
        (
            requests.ConnectionError(socks.SOCKS5Error("0x04: Host unreachable")),
            "connection failed",
        ),
    ],
    ids=[
        "refused",
        "connect-timeout",
        "read-timeout",
        "proxy",
        "tls",
        "chunked",
        "socks-raw",
        "socks-wrapped",
    ],
)
def test_network_errors_are_transient(mock: responses.RequestsMock, raised: Exception, reason: str) -> None:
    mock.get("https://www.youtube.com/watch", body=raised)

    error = fetch_error()

    assert (type(error), error.reason) == (TransientError, reason)


@pytest.mark.parametrize(
    ("player", "captions"),
    [
        ("not json at all", yt.caption_xml(VIDEO.segments)),
        (yt.player_response(VIDEO), "<transcript><text start="),
        (yt.player_response(VIDEO), '<transcript><text start="soon">hi</text></transcript>'),
    ],
    ids=["player-not-json", "broken-caption-xml", "caption-start-not-a-number"],
)
def test_unreadable_data_is_transient(mock: responses.RequestsMock, player: Any, captions: str) -> None:
    mock.get("https://www.youtube.com/watch", body=yt.watch_page(VIDEO))
    if isinstance(player, str):
        mock.post(PLAYER, body=player)
    else:
        mock.post(PLAYER, json=player)
    mock.get(CAPTIONS, body=captions)

    error = fetch_error()

    assert (type(error), error.reason) == (TransientError, UNREADABLE)


def track_answer(**changes: Any) -> dict[str, Any]:
    """A player answer whose one caption track has `changes` (None: the key left out)."""
    answer = yt.player_response(VIDEO)
    track = answer["captions"]["playerCaptionsTracklistRenderer"]["captionTracks"][0]
    for key, value in changes.items():
        if value is None:
            del track[key]
        else:
            track[key] = value
    return answer


@pytest.mark.parametrize(
    ("player", "error_name"),
    [
        ({"videoDetails": {}}, "AttributeError"),  # no playabilityStatus: the library calls .get on None
        (track_answer(name=None), "KeyError"),
        (track_answer(name={"runs": []}), "IndexError"),
        (track_answer(baseUrl=7), "AttributeError"),
    ],
    ids=["no-playability-status", "track-without-name", "track-name-without-runs", "url-not-a-string"],
)
def test_a_library_that_cannot_read_youtubes_answer_is_reported_as_a_bug(
    mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture, player: dict[str, Any], error_name: str
) -> None:
    register(mock, player=player)
    caplog.set_level(logging.DEBUG, logger="studybuddy")

    error = fetch_error()

    assert (type(error), error.kind) == (BugError, ErrorKind.ERROR)
    assert error_name in error.reason
    assert f"youtube-transcript-api {metadata.version('youtube-transcript-api')}" in error.reason
    assert f"yt-dlp {metadata.version('yt-dlp')}" in error.reason
    assert "report" in error.reason and "--debug" in error.reason
    assert len(mock.calls) == 2  # no caption request: nothing was retried either
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert [record.levelno for record in tracebacks] == [logging.DEBUG]  # shown with --debug only


# --- the mapping table for what is hard to provoke --------------------------------------------------------


def http_failure(status: int | None) -> YouTubeRequestFailed:
    response = requests.Response()
    response.status_code = status or 0
    error = requests.HTTPError(f"{status} Error: for url: https://www.youtube.com/x", response=response)
    return YouTubeRequestFailed("vid", error)


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (InvalidVideoId("https://youtu.be/x"), ErrorKind.PERMANENT, "invalid video id"),
        (NotTranslatable("vid"), ErrorKind.PERMANENT, "transcript cannot be translated"),
        (
            TranslationLanguageNotAvailable("vid"),
            ErrorKind.PERMANENT,
            "translation to that language is not available",
        ),
        (http_failure(429), ErrorKind.BLOCKED, "rate limited by YouTube (HTTP 429)"),
        (http_failure(403), ErrorKind.BLOCKED, "refused by YouTube (HTTP 403)"),
        (http_failure(503), ErrorKind.TRANSIENT, "YouTube answered HTTP 503"),
        (http_failure(410), ErrorKind.PERMANENT, "YouTube answered HTTP 410"),
        (http_failure(None), ErrorKind.TRANSIENT, "YouTube request failed"),
        (ValueError("could not convert string to float: 'x'"), ErrorKind.TRANSIENT, UNREADABLE),
    ],
)
def test_classify_table(error: Exception, kind: ErrorKind, reason: str) -> None:
    mapped = classify("vid", error)

    assert mapped is not None
    assert (mapped.kind, mapped.reason, mapped.video_id) == (kind, reason, "vid")


def test_classify_reads_the_status_from_the_message_without_a_cause() -> None:
    error = YouTubeRequestFailed("vid", requests.HTTPError("429 Client Error: Too Many Requests for url: x"))

    mapped = classify("vid", error)

    assert mapped is not None
    assert (mapped.kind, mapped.reason) == (ErrorKind.BLOCKED, "rate limited by YouTube (HTTP 429)")


def test_raw_http_429_is_blocked() -> None:
    response = requests.Response()
    response.status_code = 429

    mapped = classify("vid", requests.HTTPError("429 Client Error", response=response))

    assert mapped is not None
    assert mapped.kind == ErrorKind.BLOCKED


@pytest.mark.parametrize("error", [TypeError("x"), KeyError("x"), IndexError("x"), AttributeError("x")])
def test_programming_errors_are_bugs_not_network_trouble(error: Exception) -> None:
    mapped = classify("vid", error)

    assert isinstance(mapped, BugError)
    assert mapped.kind is ErrorKind.ERROR
    assert mapped.reason.startswith(f"a bug, not a network problem: {type(error).__name__}")


def test_unknown_errors_are_not_mapped() -> None:
    assert classify("vid", RuntimeError("bug")) is None


# --- metadata fallbacks -----------------------------------------------------------------------------------

BARE_PAGE = yt.watch_page(VIDEO, embed_player_response=False, chapter_style=None, meta_titles=False)
BARE_PLAYER = yt.player_response(VIDEO, with_details=False)


def test_oembed_gives_the_title_when_the_pages_do_not(mock: responses.RequestsMock) -> None:
    register(mock, page=BARE_PAGE, player=BARE_PLAYER)
    mock.get(
        OEMBED,
        json={"title": "From oEmbed", "author_name": "Oembed Channel"},
        match=[matchers.query_param_matcher({"url": yt.watch_url(VIDEO.video_id), "format": "json"})],
    )

    meta = fetch(use_ytdlp=False).meta

    assert (meta.title, meta.channel) == ("From oEmbed", "Oembed Channel")
    assert len(mock.calls) == 4


@pytest.mark.parametrize(
    "failure", [{"status": 404}, {"body": "not json"}, {"body": requests.ConnectionError()}]
)
def test_failing_oembed_leaves_the_title_empty(mock: responses.RequestsMock, failure: dict[str, Any]) -> None:
    register(mock, page=BARE_PAGE, player=BARE_PLAYER)
    mock.get(OEMBED, **failure)

    result = fetch(use_ytdlp=False)

    assert result.meta.title is None
    assert result.transcript.segments  # the video itself did not fail


class FakeYoutubeDL:
    """Stands in for yt_dlp.YoutubeDL: records its options, answers `info` or raises `error`."""

    created: ClassVar[list[dict[str, Any]]] = []
    info: ClassVar[dict[str, Any]] = {}
    error: ClassVar[Exception | None] = None

    def __init__(self, params: dict[str, Any]) -> None:
        FakeYoutubeDL.created.append(params)

    def __enter__(self) -> FakeYoutubeDL:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def extract_info(self, url: str, **kwargs: Any) -> dict[str, Any]:
        assert url == yt.watch_url(VIDEO.video_id)
        assert kwargs["download"] is False
        if FakeYoutubeDL.error is not None:
            raise FakeYoutubeDL.error
        return FakeYoutubeDL.info


@pytest.fixture
def fake_ytdlp(monkeypatch: pytest.MonkeyPatch) -> type[FakeYoutubeDL]:
    import yt_dlp

    monkeypatch.setattr(yt_dlp, "YoutubeDL", FakeYoutubeDL)
    monkeypatch.setattr(FakeYoutubeDL, "created", [])
    monkeypatch.setattr(FakeYoutubeDL, "info", {})
    monkeypatch.setattr(FakeYoutubeDL, "error", None)
    return FakeYoutubeDL


def test_ytdlp_gives_the_title_before_oembed(
    mock: responses.RequestsMock, fake_ytdlp: type[FakeYoutubeDL]
) -> None:
    fake_ytdlp.info = {
        "title": "From yt-dlp",
        "uploader": "Uploader",
        "upload_date": "20240102",
        "duration": 61,
    }
    register(mock, page=BARE_PAGE, player=BARE_PLAYER)

    meta = fetch(use_ytdlp=True).meta

    assert (meta.title, meta.channel, meta.upload_date, meta.duration) == (
        "From yt-dlp",
        "Uploader",
        "2024-01-02",
        61.0,
    )
    assert len(fake_ytdlp.created) == 1
    assert len(mock.calls) == 3  # no oEmbed request


def test_ytdlp_failure_falls_back_to_oembed(
    mock: responses.RequestsMock, fake_ytdlp: type[FakeYoutubeDL]
) -> None:
    fake_ytdlp.error = RuntimeError("ERROR: [youtube] Sign in to confirm you're not a bot")
    register(mock, page=BARE_PAGE, player=BARE_PLAYER)
    mock.get(OEMBED, json={"title": "From oEmbed"})

    assert fetch(use_ytdlp=True).meta.title == "From oEmbed"
    assert len(fake_ytdlp.created) == 1


def test_ytdlp_not_used_when_the_pages_have_a_title(
    mock: responses.RequestsMock, fake_ytdlp: type[FakeYoutubeDL]
) -> None:
    register(mock)

    assert fetch(use_ytdlp=True).meta.title == VIDEO.title
    assert fake_ytdlp.created == []
