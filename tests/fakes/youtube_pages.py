"""Fake YouTube responses built from plain video data: watch page, innertube player JSON, caption XML.

They follow what youtube-transcript-api 1.2.5 reads (the `INNERTUBE_API_KEY` in the watch page, the player
response's `playabilityStatus` and `captions.playerCaptionsTracklistRenderer`, `<transcript><text>` XML),
what YouTube adds there (`defaultTranslationSourceTrackIndices`: the track it translates from), and
what `studybuddy.youtube.metadata` parses (`videoDetails`, `microformat`, `ytInitialPlayerResponse`,
`ytInitialData` chapters, `<meta>` titles). Used by the unit tests (through `responses`) and by the fake
YouTube server.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

ORIGIN = "https://www.youtube.com"
API_KEY = "AIzaSyFakeInnertubeKey_0123456789abcd"
BOT_CHECK_REASON = "Sign in to confirm you\u2019re not a bot"
VISITOR_DATA = "CgtGYWtlVmlzaXRvciiAgICAgICAgA%3D%3D"
# The web client's context as the watch page's ytcfg gives it (yt-dlp sends it to PO token providers).
INNERTUBE_CONTEXT: dict[str, Any] = {
    "client": {
        "clientName": "WEB",
        "clientVersion": "2.20260708.00.00",
        "hl": "en",
        "visitorData": VISITOR_DATA,
    }
}

PLAYABLE: dict[str, Any] = {"status": "OK"}
BOT_CHECK: dict[str, Any] = {"status": "LOGIN_REQUIRED", "reason": BOT_CHECK_REASON}
AGE_RESTRICTED: dict[str, Any] = {
    "status": "LOGIN_REQUIRED",
    "reason": "This video may be inappropriate for some users.",
}
UNAVAILABLE: dict[str, Any] = {"status": "ERROR", "reason": "This video is unavailable"}
GEO_BLOCK_REASON = "The uploader has not made this video available in your country"
# What YouTube answers an exit in a country the uploader left out: its reason is in the error screen.
GEO_BLOCKED: dict[str, Any] = {
    "status": "UNPLAYABLE",
    "reason": "Video unavailable",
    "errorScreen": {
        "playerErrorMessageRenderer": {
            "reason": {"simpleText": "Video unavailable"},
            "subreason": {"runs": [{"text": GEO_BLOCK_REASON}]},
        }
    },
}


@dataclass(frozen=True)
class FakeTrack:
    """One caption track: manual unless `generated` (`kind: "asr"`)."""

    language_code: str
    name: str
    generated: bool = False
    translatable: bool = True
    po_token_required: bool = False  # adds `&exp=xpe` to the track's URL


@dataclass(frozen=True)
class FakeVideo:
    video_id: str = "dQw4w9WgXcQ"
    title: str = "How Tor Circuits Work"
    channel: str = "Networking Explained"
    length_seconds: int = 754
    keywords: tuple[str, ...] = ("tor", "onion routing")
    description: str = "Circuits, relays and exits.\nPart 1."
    upload_date: str = "2024-03-05T08:00:00-08:00"
    category: str = "Education"
    chapters: tuple[tuple[float, str], ...] = ((0.0, "Intro"), (65.5, "Building a circuit"))
    tracks: tuple[FakeTrack, ...] = (FakeTrack("en", "English"),)
    translation_languages: tuple[tuple[str, str], ...] = (("en", "English"), ("de", "German"))
    segments: tuple[tuple[float, float, str], ...] = (
        (0.0, 1.5, "Hello &amp; welcome"),
        (1.5, 2.25, "to &lt;b&gt;onion&lt;/b&gt; routing"),
    )
    playability: dict[str, Any] = field(default_factory=lambda: dict(PLAYABLE))
    translation_source: int | None = 0  # YouTube's choice of track to translate from (None: not sent)


def watch_url(video_id: str) -> str:
    return f"{ORIGIN}/watch?v={video_id}"


def player_url(api_key: str = API_KEY) -> str:
    return f"{ORIGIN}/youtubei/v1/player?key={api_key}"


def caption_url(video: FakeVideo, track: FakeTrack, origin: str = ORIGIN) -> str:
    """The track's `baseUrl` (the library drops `&fmt=srv3` and appends `&tlang=..` to translate)."""
    query = {"v": video.video_id, "lang": track.language_code}
    if track.generated:
        query["kind"] = "asr"
    url = f"{origin}/api/timedtext?{urlencode(query)}"
    if track.po_token_required:
        url += "&exp=xpe"
    return url + "&fmt=srv3"


def player_response(
    video: FakeVideo, *, with_details: bool = True, with_microformat: bool = False, origin: str = ORIGIN
) -> dict[str, Any]:
    """The innertube player JSON (the ANDROID client's answer has no microformat)."""
    data: dict[str, Any] = {"playabilityStatus": video.playability}
    if video.tracks:
        renderer: dict[str, Any] = {
            "captionTracks": [_caption_track(video, track, origin) for track in video.tracks],
            "translationLanguages": [
                {"languageCode": code, "languageName": {"runs": [{"text": name}]}}
                for code, name in video.translation_languages
            ],
        }
        if video.translation_source is not None:
            renderer["defaultTranslationSourceTrackIndices"] = [video.translation_source]
        data["captions"] = {"playerCaptionsTracklistRenderer": renderer}
    if with_details:
        data["videoDetails"] = {
            "videoId": video.video_id,
            "title": video.title,
            "author": video.channel,
            "lengthSeconds": str(video.length_seconds),
            "keywords": list(video.keywords),
            "shortDescription": video.description,
        }
    if with_microformat:
        data["microformat"] = {
            "playerMicroformatRenderer": {
                "title": {"simpleText": video.title},
                "ownerChannelName": video.channel,
                "uploadDate": video.upload_date,
                "publishDate": video.upload_date,
                "category": video.category,
            }
        }
    return data


def initial_data(video: FakeVideo, chapter_style: str = "player_bar") -> dict[str, Any]:
    """`ytInitialData`: the watch results (title, and the channel as the video's owner) and the chapters as
    `chapterRenderer`s ("player_bar") or macro markers ("panel")."""
    return {"contents": _watch_results(video)} | _chapters_data(video, chapter_style)


def _watch_results(video: FakeVideo) -> dict[str, Any]:
    owner = {"videoOwnerRenderer": {"title": {"runs": [{"text": video.channel}]}}}
    items = [
        {"videoPrimaryInfoRenderer": {"title": {"runs": [{"text": video.title}]}}},
        {"videoSecondaryInfoRenderer": {"owner": owner}},
    ]
    return {"twoColumnWatchNextResults": {"results": {"results": {"contents": items}}}}


def _chapters_data(video: FakeVideo, chapter_style: str) -> dict[str, Any]:
    if chapter_style == "player_bar":
        chapters = [
            {"chapterRenderer": {"title": {"simpleText": title}, "timeRangeStartMillis": int(start * 1000)}}
            for start, title in video.chapters
        ]
        bar = {
            "multiMarkersPlayerBarRenderer": {
                "markersMap": [{"key": "DESCRIPTION_CHAPTERS", "value": {"chapters": chapters}}]
            }
        }
        return {
            "playerOverlays": {
                "playerOverlayRenderer": {
                    "decoratedPlayerBarRenderer": {"decoratedPlayerBarRenderer": {"playerBar": bar}}
                }
            }
        }
    markers = [
        {
            "macroMarkersListItemRenderer": {
                "title": {"simpleText": title},
                "timeDescription": {"simpleText": f"{int(start) // 60}:{int(start) % 60:02d}"},
                "onTap": {"watchEndpoint": {"videoId": video.video_id, "startTimeSeconds": int(start)}},
            }
        }
        for start, title in video.chapters
    ]
    panel = {
        "engagementPanelSectionListRenderer": {"content": {"macroMarkersListRenderer": {"contents": markers}}}
    }
    return {"engagementPanels": [panel]}


def watch_page(
    video: FakeVideo,
    *,
    api_key: str | None = API_KEY,
    embed_player_response: bool = True,
    chapter_style: str | None = "player_bar",
    meta_titles: bool = True,
) -> str:
    """A watch page: `<meta>` titles, ytcfg with the innertube key, ytInitialPlayerResponse, ytInitialData."""
    head = ""
    if meta_titles:
        title = html.escape(video.title)
        head = f'<meta name="title" content="{title}"><meta property="og:title" content="{title}">'
    scripts = []
    if api_key is not None:
        config = {
            "INNERTUBE_API_KEY": api_key,
            "INNERTUBE_CONTEXT_CLIENT_NAME": 1,
            "INNERTUBE_CONTEXT": INNERTUBE_CONTEXT,
            "VISITOR_DATA": VISITOR_DATA,
        }
        scripts.append(f"ytcfg.set({_script_json(config)});")
    if embed_player_response:
        embedded = player_response(video, with_details=True, with_microformat=True)
        scripts.append(f"var ytInitialPlayerResponse = {_script_json(embedded)};")
    if chapter_style is not None:
        scripts.append(f"var ytInitialData = {_script_json(initial_data(video, chapter_style))};")
    body = "".join(f'<script nonce="x">{script}</script>' for script in scripts)
    title_tag = f"<title>{html.escape(video.title)} - YouTube</title>"
    return f"<!DOCTYPE html><html><head>{title_tag}{head}</head><body>{body}</body></html>"


def recaptcha_page() -> str:
    """What YouTube shows a blocked IP instead of a watch page."""
    return (
        '<html><body><form id="captcha-form" method="POST">'
        '<div class="g-recaptcha" data-sitekey="fake"></div></form></body></html>'
    )


def consent_page() -> str:
    """A cookie consent interstitial without the `v` field the library needs to pass it."""
    return '<html><body><form action="https://consent.youtube.com/s" method="POST"></form></body></html>'


def caption_json3(segments: tuple[tuple[float, float, str], ...], *, generated: bool = False) -> str:
    """A track as json3 (`fmt=json3`), text unescaped; a generated (ASR) track comes word by word with
    line-break events between captions, as YouTube sends it."""
    events: list[dict[str, Any]] = []
    for start, duration, text in segments:
        plain = html.unescape(text)
        event: dict[str, Any] = {"tStartMs": round(start * 1000), "dDurationMs": round(duration * 1000)}
        if generated:
            words = plain.split(" ")
            event["segs"] = [{"utf8": words[0]}] + [
                {"utf8": f" {word}", "tOffsetMs": 120 * n} for n, word in enumerate(words[1:], start=1)
            ]
            events.append(event)
            events.append(
                {"tStartMs": event["tStartMs"], "dDurationMs": 10, "aAppend": 1, "segs": [{"utf8": "\n"}]}
            )
        else:
            event["segs"] = [{"utf8": plain}]
            events.append(event)
    return json.dumps({"wireMagic": "pb3", "events": events}, ensure_ascii=False)


def caption_vtt(segments: tuple[tuple[float, float, str], ...]) -> str:
    """A track as WebVTT (`fmt=vtt`); the XML escapes of `text` are VTT's escapes too."""
    cues = "".join(
        f"{_vtt_time(start)} --> {_vtt_time(start + duration)} align:start position:0%\n{text}\n\n"
        for start, duration, text in segments
    )
    return f"WEBVTT\nKind: captions\nLanguage: en\n\n{cues}"


def _vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    return (
        f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d}.{millis % 1000:03d}"
    )


def caption_xml(segments: tuple[tuple[float, float, str], ...]) -> str:
    """A caption track; each `text` is inserted as is, so escape markup (`&lt;b&gt;`) like YouTube does."""
    lines = "".join(
        f'<text start="{start}" dur="{duration}">{text}</text>' for start, duration, text in segments
    )
    return f'<?xml version="1.0" encoding="utf-8" ?><transcript>{lines}</transcript>'


def _caption_track(video: FakeVideo, track: FakeTrack, origin: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "baseUrl": caption_url(video, track, origin),
        "name": {"runs": [{"text": track.name}]},
        "vssId": f"{'a' if track.generated else ''}.{track.language_code}",
        "languageCode": track.language_code,
        "isTranslatable": track.translatable,
    }
    if track.generated:
        entry["kind"] = "asr"
    return entry


def _script_json(data: dict[str, Any]) -> str:
    """JSON safe inside a `<script>` element."""
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
