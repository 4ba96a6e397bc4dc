"""Fake YouTube playlist and channel pages: what yt-dlp's ``YoutubeTab`` extractor reads (``extract_flat``).

A playlist page (``/playlist?list=ID``) and a channel's videos tab (``/@handle/videos``,
``/channel/UC../videos``, ...) carry ``ytcfg`` and ``ytInitialData``: the first page of entries
(``playlistVideoRenderer`` in a ``playlistVideoListRenderer``, or ``richItemRenderer`` > ``videoRenderer`` /
``lockupViewModel`` in a channel's ``richGridRenderer``) and a ``continuationItemRenderer`` whose token the
innertube ``browse`` endpoint answers with the next page (``appendContinuationItemsAction``). A playlist
that is gone answers with an ERROR alert. Used by the unit tests (through ``responses``) and by the test
bed's fake YouTube server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.fakes.youtube_pages import API_KEY

PAGE_SIZE = 100  # a playlist page, as YouTube serves it
CHANNEL_PAGE_SIZE = 30  # a channel grid page (yt-dlp reads those in quadratic time: keep it real)
GONE_MESSAGE = "The playlist does not exist."
_TOKEN_PREFIX = "sbcont"


@dataclass(frozen=True)
class ListedVideo:
    """A video as a playlist or channel lists it."""

    video_id: str
    title: str
    duration: int
    published: str = "3 weeks ago"  # YouTube's relative upload time


@dataclass(frozen=True)
class FakeList:
    """A playlist (``list_id`` PL...) or a channel's videos tab (``list_id`` UC...), with its videos."""

    list_id: str
    title: str
    videos: tuple[ListedVideo, ...]
    is_channel: bool = False
    lockups: bool = False  # channel entries as ``lockupViewModel`` (YouTube's newer layout)

    @property
    def page_size(self) -> int:
        return CHANNEL_PAGE_SIZE if self.is_channel else PAGE_SIZE


def list_page(fake: FakeList) -> str:
    """The HTML of a playlist page or a channel's videos tab: ytcfg plus the first page in ytInitialData."""
    items = page_items(fake, 0)
    if fake.is_channel:
        content: dict[str, Any] = {"richGridRenderer": {"contents": items}}
        metadata = {"channelMetadataRenderer": {"title": fake.title, "externalId": fake.list_id}}
        tab_url = f"/channel/{fake.list_id}/videos"
        title = "Videos"
    else:
        listing = {"playlistVideoListRenderer": {"contents": items, "playlistId": fake.list_id}}
        content = {"sectionListRenderer": {"contents": [{"itemSectionRenderer": {"contents": [listing]}}]}}
        metadata = {"playlistMetadataRenderer": {"title": fake.title}}
        tab_url = f"/playlist?list={fake.list_id}"
        title = ""
    tab = {
        "tabRenderer": {
            "selected": True,
            "title": title,
            "endpoint": {"commandMetadata": {"webCommandMetadata": {"url": tab_url}}},
            "content": content,
        }
    }
    data = {"contents": {"twoColumnBrowseResultsRenderer": {"tabs": [tab]}}, "metadata": metadata}
    return _page(data)


def gone_page(message: str = GONE_MESSAGE) -> str:
    """What YouTube serves for a playlist that was deleted or made private: an ERROR alert, no contents."""
    alert = {"alertRenderer": {"type": "ERROR", "text": {"runs": [{"text": message}]}}}
    return _page({"alerts": [alert]})


def continuation_response(fake: FakeList, offset: int) -> dict[str, Any]:
    """The browse endpoint's answer to a continuation token: the next page and, if more, a new token."""
    action = {"appendContinuationItemsAction": {"continuationItems": page_items(fake, offset)}}
    return {"onResponseReceivedActions": [action]}


def continuation_token(list_id: str, offset: int) -> str:
    return f"{_TOKEN_PREFIX}:{list_id}:{offset}"


def parse_continuation(body: bytes) -> tuple[str, int] | None:
    """The (list id, offset) of a browse request's continuation token, or None for anything else."""
    try:
        token = json.loads(body or b"{}").get("continuation")
    except (ValueError, AttributeError):
        return None
    prefix, _, rest = token.partition(":") if isinstance(token, str) else ("", "", "")
    list_id, _, offset = rest.rpartition(":")
    if prefix != _TOKEN_PREFIX or not offset.isdigit():
        return None
    return list_id, int(offset)


def page_items(fake: FakeList, offset: int) -> list[dict[str, Any]]:
    """One page of entries from ``offset`` on, and a continuation item when more follow."""
    page_size = fake.page_size
    chunk: Sequence[ListedVideo] = fake.videos[offset : offset + page_size]
    items = [_entry(fake, video, offset + number) for number, video in enumerate(chunk, start=1)]
    if offset + page_size < len(fake.videos):
        command = {"continuationCommand": {"token": continuation_token(fake.list_id, offset + page_size)}}
        items.append({"continuationItemRenderer": {"continuationEndpoint": command}})
    return items


def _entry(fake: FakeList, video: ListedVideo, index: int) -> dict[str, Any]:
    if not fake.is_channel:
        renderer = _video_renderer(video) | {"index": {"simpleText": str(index)}}
        return {"playlistVideoRenderer": renderer}
    if fake.lockups:
        return {"richItemRenderer": {"content": {"lockupViewModel": _lockup(video)}}}
    return {"richItemRenderer": {"content": {"videoRenderer": _video_renderer(video)}}}


def _video_renderer(video: ListedVideo) -> dict[str, Any]:
    return {
        "videoId": video.video_id,
        "title": {"runs": [{"text": video.title}]},
        "lengthSeconds": str(video.duration),
        "lengthText": {"simpleText": _clock(video.duration)},
        "publishedTimeText": {"simpleText": video.published},
    }


def _lockup(video: ListedVideo) -> dict[str, Any]:
    badge = {"thumbnailBadgeViewModel": {"text": _clock(video.duration), "badgeStyle": "BADGE_DEFAULT"}}
    overlay = {"thumbnailOverlayBadgeViewModel": {"thumbnailBadges": [badge]}}
    return {
        "contentId": video.video_id,
        "contentType": "LOCKUP_CONTENT_TYPE_VIDEO",
        "contentImage": {"thumbnailViewModel": {"overlays": [overlay]}},
        "metadata": {"lockupMetadataViewModel": {"title": {"content": video.title}}},
    }


def _clock(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _page(data: dict[str, Any]) -> str:
    config = {"INNERTUBE_API_KEY": API_KEY, "INNERTUBE_CONTEXT_CLIENT_NAME": 1}
    return (
        "<!DOCTYPE html><html><head><title>YouTube</title></head><body>"
        f"<script>ytcfg.set({json.dumps(config)});</script>"
        f"<script>var ytInitialData = {json.dumps(data)};</script>"
        "</body></html>"
    )
