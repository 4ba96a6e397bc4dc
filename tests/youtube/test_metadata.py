"""Metadata parsing from recorded pages: defensive, merged, and the yt-dlp options."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from studybuddy.egress.sessions import Identity, ProxyEndpoint, new_session
from studybuddy.models import Chapter, VideoMeta
from studybuddy.youtube.metadata import (
    PageRecorder,
    chapters_from_initial_data,
    fill_missing,
    meta_from_player,
    meta_from_watch_page,
    meta_from_ytdlp,
    translation_source,
    ytdlp_options,
)
from tests.fakes import youtube_pages as yt

VIDEO = yt.FakeVideo()
VID = VIDEO.video_id

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)
YOUTUBE_KEYS = ["videoDetails", "microformat", "playerMicroformatRenderer", "title", "lengthSeconds"]
YOUTUBE_KEYS += ["keywords", "uploadDate", "chapterRenderer", "macroMarkersListItemRenderer"]
YOUTUBE_KEYS += ["timeRangeStartMillis", "onTap", "watchEndpoint", "startTimeSeconds", "runs", "simpleText"]
youtube_keys = st.sampled_from(YOUTUBE_KEYS)
youtube_like = st.recursive(
    st.none() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(youtube_keys, children, max_size=4),
    max_leaves=30,
)


# --- player JSON ------------------------------------------------------------------------------------------


def test_player_response_fields() -> None:
    meta = meta_from_player(VID, yt.player_response(VIDEO, with_microformat=True))

    assert meta == VideoMeta(
        VID,
        title=VIDEO.title,
        channel=VIDEO.channel,
        duration=754.0,
        upload_date="2024-03-05",
        description=VIDEO.description,
        tags=VIDEO.keywords,
        category=VIDEO.category,
    )


def test_microformat_fills_in_for_missing_details() -> None:
    data = yt.player_response(VIDEO, with_details=False, with_microformat=True)

    meta = meta_from_player(VID, data)

    assert (meta.title, meta.channel, meta.upload_date, meta.duration) == (
        VIDEO.title,
        VIDEO.channel,
        "2024-03-05",
        None,
    )


@pytest.mark.parametrize(
    ("details", "micro"),
    [
        ({"title": 42, "lengthSeconds": "abc", "keywords": "tor", "author": ["x"]}, {"uploadDate": "soon"}),
        ({"title": "   ", "lengthSeconds": "0", "keywords": [1, None, "  "]}, {"uploadDate": "2024-02-30"}),
        ({"lengthSeconds": True, "shortDescription": {"runs": "x"}}, []),
        ({"lengthSeconds": "nan"}, {"uploadDate": 20240101}),
    ],
)
def test_odd_player_values_leave_fields_empty(details: Any, micro: Any) -> None:
    data = {"videoDetails": details, "microformat": {"playerMicroformatRenderer": micro}}

    assert meta_from_player(VID, data) == VideoMeta(VID)


@given(json_values)
def test_player_parsing_never_raises(data: Any) -> None:
    assert meta_from_player(VID, {"videoDetails": data, "microformat": data}).video_id == VID


@given(youtube_like)
def test_chapter_parsing_never_raises(data: Any) -> None:
    assert all(isinstance(chapter, Chapter) for chapter in chapters_from_initial_data(data))


@given(st.text(max_size=200))
def test_watch_page_parsing_never_raises(text: str) -> None:
    page = f"<meta name=title content='x'>var ytInitialData = {{{text}ytInitialPlayerResponse = {{{text}"
    assert meta_from_watch_page(VID, page).video_id == VID


# --- watch page -------------------------------------------------------------------------------------------


def test_watch_page_fields_and_chapters() -> None:
    meta = meta_from_watch_page(VID, yt.watch_page(VIDEO))

    assert (meta.title, meta.channel, meta.upload_date, meta.duration) == (
        VIDEO.title,
        VIDEO.channel,
        "2024-03-05",
        754.0,
    )
    assert meta.chapters == (Chapter(0.0, "Intro"), Chapter(65.5, "Building a circuit"))


def test_window_assignment_and_broken_json_before_good_json() -> None:
    player = json.dumps(yt.player_response(VIDEO))
    broken = '<script>var ytInitialPlayerResponse = {"broken": </script>'
    page = f'{broken}<script>window["ytInitialPlayerResponse"] = {player};</script>'

    assert meta_from_watch_page(VID, page).title == VIDEO.title


@pytest.mark.parametrize(
    ("head", "title"),
    [
        ('<meta property="og:title" content="OG &amp; more"><meta name="title" content="Named">', "Named"),
        ('<META property="og:title" content="Only OG &quot;title&quot;">', 'Only OG "title"'),
        ('<meta name="description" content="not a title">', None),
    ],
)
def test_meta_tags_are_the_last_resort(head: str, title: str | None) -> None:
    assert meta_from_watch_page(VID, f"<html><head>{head}</head></html>").title == title


def test_chapter_renderers_win_over_macro_markers_and_are_sorted_and_unique() -> None:
    def chapter(title: str, millis: Any) -> dict[str, Any]:
        return {"chapterRenderer": {"title": {"simpleText": title}, "timeRangeStartMillis": millis}}

    data = {
        "a": [chapter("Second", 90_000), chapter("First", 0), chapter("Second again", 90_000)],
        "b": {"macroMarkersListItemRenderer": {"title": {"runs": [{"text": "Marker"}]}}},
        "c": [chapter("", 5000), chapter("No start", None), chapter("Negative", -1)],
    }

    chapters = chapters_from_initial_data(data)

    assert [chapter.start for chapter in chapters] == [0.0, 90.0]
    assert chapters[0].title == "First"
    assert chapters[1].title in ("Second", "Second again")


def test_macro_markers_when_no_chapter_renderers() -> None:
    data = yt.initial_data(VIDEO, chapter_style="panel")

    assert chapters_from_initial_data(data) == (Chapter(0.0, "Intro"), Chapter(65.0, "Building a circuit"))


# --- merging and recording --------------------------------------------------------------------------------


def test_fill_missing_keeps_what_is_known() -> None:
    known = VideoMeta(VID, title="Known", tags=())
    fallback = VideoMeta(VID, title="Other", channel="Channel", tags=("a",))

    assert fill_missing(known, fallback) == VideoMeta(VID, title="Known", channel="Channel", tags=("a",))
    assert fill_missing(known, VideoMeta(VID)) is known


def response(url: str, status: int = 200, body: bytes = b"page") -> requests.Response:
    result = requests.Response()
    result.url, result.status_code, result._content = url, status, body
    return result


def test_recorder_keeps_only_the_current_videos_successful_pages() -> None:
    recorder = PageRecorder()
    recorder(response(yt.watch_url(VID)))  # before any fetch: ignored
    recorder.reset(VID)

    recorder(response(yt.watch_url(VID), body="first \u2019".encode()))
    recorder(response(yt.watch_url("someone_else"), body=b"other"))
    recorder(response(yt.watch_url(VID), status=429, body=b"blocked"))
    recorder(response(yt.player_url(), body=b'{"a": 1}'))
    recorder(response("https://www.youtube.com/api/timedtext?v=x", body=b"<transcript/>"))

    assert (recorder.watch_page, recorder.player_response) == ("first \u2019", '{"a": 1}')
    recorder.reset()
    assert (recorder.watch_page, recorder.player_response) == (None, None)


# --- yt-dlp -----------------------------------------------------------------------------------------------


def proxied_session() -> requests.Session:
    identity = Identity("run1", 2, 0, "s3cret-pass")
    return new_session(identity=identity, proxy=ProxyEndpoint("127.0.0.1", 9050))


def test_ytdlp_options_follow_the_session() -> None:
    options = ytdlp_options(proxied_session())

    assert options is not None
    assert options["proxy"] == "socks5h://sb-run1-w2-g0:s3cret-pass@127.0.0.1:9050"
    assert options["nocheckcertificate"] is False
    assert options["skip_download"] and options["quiet"] and options["no_warnings"]
    assert options["cachedir"] is False


def test_ytdlp_options_without_proxy_ignore_proxy_variables() -> None:
    session = new_session()
    session.verify = False

    options = ytdlp_options(session)

    assert options is not None
    assert (options["proxy"], options["nocheckcertificate"]) == ("", True)


def test_ytdlp_is_skipped_with_a_custom_ca_bundle(tmp_path: Any) -> None:
    session = new_session(ca_bundle=str(tmp_path / "ca.pem"))

    assert ytdlp_options(session) is None
    assert meta_from_ytdlp(VID, session) is None


def test_ytdlp_log_hides_the_proxy_password(caplog: pytest.LogCaptureFixture) -> None:
    options = ytdlp_options(proxied_session())
    assert options is not None

    with caplog.at_level(logging.DEBUG, logger="studybuddy.youtube.ytdlp_common"):
        options["logger"].error("ERROR: proxy socks5h://sb-run1-w2-g0:s3cret-pass@127.0.0.1:9050 refused")

    assert "refused" in caplog.text
    assert "s3cret-pass" not in caplog.text
    assert all(record.levelno == logging.DEBUG for record in caplog.records)


@pytest.mark.parametrize(
    ("renderer", "expected"),
    [
        ({"defaultTranslationSourceTrackIndices": [1]}, ("en", True)),
        ({"defaultTranslationSourceTrackIndices": [0]}, ("zh-Hans", False)),
        ({"defaultTranslationSourceTrackIndices": [7, 1]}, ("en", True)),  # the first index that exists
        ({"defaultTranslationSourceTrackIndices": [True]}, None),
        ({"defaultTranslationSourceTrackIndices": "1"}, None),
        ({}, None),
    ],
)
def test_translation_source_is_the_track_the_player_answer_names(
    renderer: dict[str, Any], expected: tuple[str, bool] | None
) -> None:
    tracks = [{"languageCode": "zh-Hans"}, {"languageCode": "en", "kind": "asr"}]
    answer = {"captions": {"playerCaptionsTracklistRenderer": {"captionTracks": tracks, **renderer}}}
    assert translation_source(json.dumps(answer)) == expected
    assert translation_source("not json") is None
    assert translation_source(None) is None
