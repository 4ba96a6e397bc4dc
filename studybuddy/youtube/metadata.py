"""Video metadata at no extra request: parsed from the pages youtube-transcript-api fetches anyway.

For every video the library GETs the watch page and POSTs the innertube player endpoint. `PageRecorder`, a
`requests` response hook, keeps the last of each for the video being fetched, and `collect_metadata` reads
them: the player JSON's `videoDetails` and `microformat`, the watch page's `ytInitialPlayerResponse`, the
chapters in its `ytInitialData`, and its `<meta>` titles. Only when no title turns up does it spend requests:
yt-dlp (same proxy), then oEmbed (same session); their failures are logged at debug and never fail a video.

Parsing is defensive: missing or odd data leaves a field empty and never raises.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import json
import logging
import math
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from studybuddy.models import Chapter, VideoMeta
from studybuddy.youtube.ytdlp_common import YtDlpLogger

log = logging.getLogger(__name__)

WATCH_PATH = "/watch"
PLAYER_PATH = "/youtubei/v1/player"
OEMBED_URL = "https://www.youtube.com/oembed"
_MAX_JSON_NODES = 500_000  # bounds the chapter search in a hostile or huge ytInitialData
_META_TAG = re.compile(r"<meta\b[^>]*>", re.IGNORECASE)
_TAG_ATTRIBUTE = re.compile(r'([\w:-]+)\s*=\s*"([^"]*)"')
_ISO_DATE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")


class PageRecorder:
    """A response hook that keeps the last watch page and player response of the video being fetched."""

    def __init__(self) -> None:
        self._video_id: str | None = None
        self.watch_page: str | None = None
        self.player_response: str | None = None

    def reset(self, video_id: str | None = None) -> None:
        """Forget what was recorded; record responses for `video_id` from now on (None: record nothing)."""
        self._video_id = video_id
        self.watch_page = None
        self.player_response = None

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if self._video_id is None or response.status_code != 200:
            return
        parts = urlsplit(response.url)
        if parts.path == WATCH_PATH and parse_qs(parts.query).get("v") == [self._video_id]:
            self.watch_page = response.content.decode("utf-8", errors="replace")
        elif parts.path == PLAYER_PATH:
            self.player_response = response.content.decode("utf-8", errors="replace")


def collect_metadata(
    video_id: str,
    recorder: PageRecorder,
    session: requests.Session,
    *,
    use_ytdlp: bool,
    known: VideoMeta | None = None,
) -> VideoMeta:
    """What the recorded pages say about `video_id`, then what is `known` already (from yt-dlp's subtitle
    path); yt-dlp (if `use_ytdlp`) then oEmbed only when there is still no title."""
    meta = VideoMeta(video_id)
    if recorder.player_response is not None:
        meta = fill_missing(meta, meta_from_player(video_id, _loads(recorder.player_response)))
    if recorder.watch_page is not None:
        meta = fill_missing(meta, meta_from_watch_page(video_id, recorder.watch_page))
    if known is not None:
        meta = fill_missing(meta, known)
    fallbacks: list[Callable[[str, requests.Session], VideoMeta | None]] = [meta_from_oembed]
    if use_ytdlp:
        fallbacks.insert(0, meta_from_ytdlp)
    for fallback in fallbacks:
        if meta.title is not None:
            break
        found = fallback(video_id, session)
        if found is not None:
            meta = fill_missing(meta, found)
    return meta


def translation_source(player_response: str | None) -> tuple[str, bool] | None:
    """(language code, automatic?) of the caption track YouTube itself translates from, as its player answer
    names it (`defaultTranslationSourceTrackIndices`), or None when the answer names none."""
    renderer = _dig(_loads(player_response or ""), "captions", "playerCaptionsTracklistRenderer")
    indices, tracks = _dig(renderer, "defaultTranslationSourceTrackIndices"), _dig(renderer, "captionTracks")
    if not isinstance(indices, list) or not isinstance(tracks, list):
        return None
    for index in indices:
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(tracks):
            code = _text(_dig(tracks[index], "languageCode"))
            if code is not None:
                return code, _dig(tracks[index], "kind") == "asr"
    return None


def fill_missing(meta: VideoMeta, fallback: VideoMeta) -> VideoMeta:
    """`meta` with its empty fields taken from `fallback`."""
    changes = {
        field.name: getattr(fallback, field.name)
        for field in dataclasses.fields(meta)
        if not getattr(meta, field.name) and getattr(fallback, field.name)
    }
    return dataclasses.replace(meta, **changes) if changes else meta


def meta_from_player(video_id: str, data: Any) -> VideoMeta:
    """Fields from a player response (`videoDetails`, `microformat.playerMicroformatRenderer`)."""
    details = _dig(data, "videoDetails")
    micro = _dig(data, "microformat", "playerMicroformatRenderer")
    return VideoMeta(
        video_id,
        title=_text(_dig(details, "title")) or _text(_dig(micro, "title")),
        channel=_text(_dig(details, "author")) or _text(_dig(micro, "ownerChannelName")),
        duration=_seconds(_dig(details, "lengthSeconds")) or _seconds(_dig(micro, "lengthSeconds")),
        upload_date=_iso_date(_dig(micro, "uploadDate")) or _iso_date(_dig(micro, "publishDate")),
        description=_text(_dig(details, "shortDescription")) or _text(_dig(micro, "description")),
        tags=_strings(_dig(details, "keywords")),
        category=_text(_dig(micro, "category")),
    )


def meta_from_watch_page(video_id: str, page: str) -> VideoMeta:
    """Fields from a watch page: its embedded player response, chapters and `<meta>` title."""
    embedded = meta_from_player(video_id, _embedded_json(page, "ytInitialPlayerResponse"))
    chapters = chapters_from_initial_data(_embedded_json(page, "ytInitialData"))
    return fill_missing(
        dataclasses.replace(embedded, chapters=chapters), VideoMeta(video_id, title=_meta_title(page))
    )


def chapters_from_initial_data(data: Any) -> tuple[Chapter, ...]:
    """Chapters from `ytInitialData`: `chapterRenderer`s, else `macroMarkersListItemRenderer`s."""
    chapters: list[Chapter] = []
    markers: list[Chapter] = []
    for key, value in _walk(data):
        if key == "chapterRenderer":
            _append_chapter(chapters, value, _number(_dig(value, "timeRangeStartMillis")), 1000)
        elif key == "macroMarkersListItemRenderer":
            start = _number(_dig(value, "onTap", "watchEndpoint", "startTimeSeconds"))
            _append_chapter(markers, value, start, 1)
    by_start: dict[float, Chapter] = {}
    for chapter in chapters or markers:
        by_start.setdefault(chapter.start, chapter)
    return tuple(sorted(by_start.values(), key=lambda chapter: chapter.start))


def meta_from_ytdlp(video_id: str, session: requests.Session) -> VideoMeta | None:
    """Metadata through yt-dlp with the session's proxy, or None when it cannot be had."""
    options = ytdlp_options(session)
    if options is None:
        log.debug("%s: yt-dlp skipped: it cannot use the session's CA bundle", video_id)
        return None
    try:
        import yt_dlp

        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(VideoMeta(video_id).url, download=False, process=False, ie_key="Youtube")
    except Exception as error:  # yt-dlp raises many types; a fallback must never fail the video
        log.debug("%s: yt-dlp metadata failed (%s)", video_id, type(error).__name__)
        return None
    return meta_from_info(video_id, info)


def meta_from_info(video_id: str, info: Any) -> VideoMeta:
    """Fields from a yt-dlp info dict (title, channel, duration, date, description, tags, chapters)."""
    return VideoMeta(
        video_id,
        title=_text(_dig(info, "title")),
        channel=_text(_dig(info, "channel")) or _text(_dig(info, "uploader")),
        duration=_seconds(_dig(info, "duration")),
        upload_date=_iso_date(_dig(info, "upload_date")),
        description=_text(_dig(info, "description")),
        tags=_strings(_dig(info, "tags")),
        chapters=_ytdlp_chapters(_dig(info, "chapters")),
        category=next(iter(_strings(_dig(info, "categories"))), None),
    )


def ytdlp_options(session: requests.Session) -> dict[str, Any] | None:
    """yt-dlp options that go where `session` goes, or None if the session trusts a custom CA bundle.

    yt-dlp has no option for a CA bundle, and turning verification off instead would be unsafe. The
    Python API reads no configuration files. An empty `proxy` makes yt-dlp ignore proxy variables.
    """
    if isinstance(session.verify, str):
        return None
    return ytdlp_base_options(session)


def ytdlp_base_options(session: requests.Session) -> dict[str, Any]:
    """yt-dlp options with `session`'s proxy; a custom CA bundle is the caller's business (see `expand`)."""
    proxy = session.proxies.get("https") or session.proxies.get("all") or ""
    return {
        "proxy": proxy,
        "nocheckcertificate": session.verify is False,
        "skip_download": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "cachedir": False,
        "extractor_retries": 0,
        "logger": YtDlpLogger([urlsplit(proxy).password]),
    }


def meta_from_oembed(video_id: str, session: requests.Session) -> VideoMeta | None:
    """Title and channel from YouTube's oEmbed endpoint, or None when it fails."""
    try:
        response = session.get(OEMBED_URL, params={"url": VideoMeta(video_id).url, "format": "json"})
        response.raise_for_status()
        data = response.json()
    except Exception as error:  # requests, SOCKS and JSON errors alike: a fallback never fails the video
        log.debug("%s: oEmbed metadata failed (%s)", video_id, type(error).__name__)
        return None
    return VideoMeta(video_id, title=_text(_dig(data, "title")), channel=_text(_dig(data, "author_name")))


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _embedded_json(page: str, name: str) -> Any:
    """The first JSON object assigned to `name` in a page (`var x = {...}` or `window["x"] = {...}`)."""
    decoder = json.JSONDecoder()
    pattern = re.compile(rf"""(?:\b{name}|\[["']{name}["']\])\s*=\s*(?=\{{)""")
    for match in pattern.finditer(page):
        try:
            value, _ = decoder.raw_decode(page, match.end())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _meta_title(page: str) -> str | None:
    """The `<meta name="title">` content, else `<meta property="og:title">`."""
    titles: dict[str, str] = {}
    for tag in _META_TAG.findall(page):
        attributes = {name.lower(): value for name, value in _TAG_ATTRIBUTE.findall(tag)}
        key = attributes.get("name") or attributes.get("property")
        content = _text(html.unescape(attributes.get("content", "")))
        if key in ("title", "og:title") and content and key not in titles:
            titles[key] = content
    return titles.get("title") or titles.get("og:title")


def _walk(data: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of nested dicts and lists, depth first, at most `_MAX_JSON_NODES` nodes."""
    pending = [data]
    visited = 0
    while pending and visited < _MAX_JSON_NODES:
        node = pending.pop()
        visited += 1
        if isinstance(node, dict):
            for key, value in node.items():
                yield key, value
                pending.append(value)
        elif isinstance(node, list):
            pending.extend(node)


def _append_chapter(
    chapters: list[Chapter], renderer: Any, start: float | None, units_per_second: int
) -> None:
    title = _text(_dig(renderer, "title"))
    if title is not None and start is not None and start >= 0:
        chapters.append(Chapter(start / units_per_second, title))


def _ytdlp_chapters(entries: Any) -> tuple[Chapter, ...]:
    if not isinstance(entries, list):
        return ()
    chapters: list[Chapter] = []
    for entry in entries:
        _append_chapter(chapters, entry, _number(_dig(entry, "start_time")), 1)
    return tuple(chapters)


def _dig(value: Any, *keys: str) -> Any:
    """`value[k1][k2]...`, or None as soon as a level is not a dict or lacks the key."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _text(value: Any) -> str | None:
    """A non-blank string, or the text of a `{"simpleText": ...}` / `{"runs": [{"text": ...}]}` object."""
    if isinstance(value, dict):
        runs = value.get("runs")
        if isinstance(runs, list):
            value = "".join(
                run["text"] for run in runs if isinstance(run, dict) and isinstance(run.get("text"), str)
            )
        else:
            value = value.get("simpleText")
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _number(value: Any) -> float | None:
    """A number, or a string holding one (YouTube sends both); booleans and junk give None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _seconds(value: Any) -> float | None:
    """A positive duration in seconds (YouTube reports 0 for live streams: unknown)."""
    number = _number(value)
    return number if number is not None and number > 0 else None


def _iso_date(value: Any) -> str | None:
    """`YYYY-MM-DD` from `2024-01-31`, `2024-01-31T08:00:00-08:00` or yt-dlp's `20240131`."""
    match = _ISO_DATE.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    try:
        return datetime.date(*(int(part) for part in match.groups())).isoformat()
    except ValueError:
        return None


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(text for text in map(_text, value) if text is not None)
