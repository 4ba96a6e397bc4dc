"""Fake YouTube playlist and channel pages: what yt-dlp's ``YoutubeTab`` extractor reads (``extract_flat``).

A playlist page (``/playlist?list=ID``) and a channel's videos tab (``/@handle/videos``,
``/channel/UC../videos``, ...) carry ``ytcfg`` and ``ytInitialData``: the first page of entries
(``playlistVideoRenderer`` in a ``playlistVideoListRenderer``, or ``richItemRenderer`` > ``videoRenderer`` /
``lockupViewModel`` in a channel's ``richGridRenderer``) and a ``continuationItemRenderer`` whose token the
innertube ``browse`` endpoint answers with the next page (``appendContinuationItemsAction``). A playlist
that is gone answers with an ERROR alert.

Private and deleted videos of a playlist are hidden by default, as YouTube does (an INFO alert says
"Unavailable videos are hidden"); the ``browse`` request that yt-dlp sends to show them (``browseId``
``VL`` + the list id, ``params`` ``wgYCCAA=``) answers with the whole list, where they are listed with
YouTube's placeholder titles "[Private video]" and "[Deleted video]", no duration and ``isPlayable`` false.
Used by the unit tests (through ``responses``) and by the test bed's fake YouTube server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tests.fakes.youtube_pages import API_KEY

PAGE_SIZE = 100  # a playlist page, as YouTube serves it
CHANNEL_PAGE_SIZE = 30  # a channel grid page (yt-dlp reads those in quadratic time: keep it real)
GONE_MESSAGE = "The playlist does not exist."
HIDDEN_MESSAGE = "Unavailable videos are hidden"
SHOW_UNAVAILABLE = "wgYCCAA="  # the browse params that ask for a playlist with its unavailable videos
PLACEHOLDER_TITLES = {"private": "[Private video]", "deleted": "[Deleted video]"}
_TOKEN_PREFIXES = {False: "sbcont", True: "sbcontall"}  # without / with the unavailable videos


@dataclass(frozen=True)
class ListedVideo:
    """A video as a playlist or channel lists it."""

    video_id: str
    title: str
    duration: int
    published: str = "3 weeks ago"  # YouTube's relative upload time
    unavailable: str | None = None  # "private" or "deleted": listed only on request, never playable


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

    def entries(self, shown: bool) -> tuple[ListedVideo, ...]:
        """The videos listed: with the unavailable ones only when asked to show them."""
        return self.videos if shown else tuple(video for video in self.videos if not video.unavailable)


def list_page(fake: FakeList) -> str:
    """The HTML of a playlist page or a channel's videos tab: ytcfg plus the first page in ytInitialData."""
    return _page(initial_data(fake, shown=False))


def initial_data(fake: FakeList, *, shown: bool) -> dict[str, Any]:
    """ytInitialData of a list: its first page, with the unavailable videos if `shown`, else an alert when
    some are hidden."""
    items = page_items(fake, 0, shown=shown)
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
    data: dict[str, Any] = {
        "contents": {"twoColumnBrowseResultsRenderer": {"tabs": [tab]}},
        "metadata": metadata,
    }
    if not shown and fake.entries(shown=False) != fake.videos:
        alert = {"type": "INFO", "text": {"runs": [{"text": HIDDEN_MESSAGE}]}}
        data["alerts"] = [{"alertWithButtonRenderer": alert}]
    return data


def gone_page(message: str = GONE_MESSAGE) -> str:
    """What YouTube serves for a playlist that was deleted or made private: an ERROR alert, no contents."""
    alert = {"alertRenderer": {"type": "ERROR", "text": {"runs": [{"text": message}]}}}
    return _page({"alerts": [alert]})


def browse_answer(lists: Mapping[str, FakeList], body: bytes) -> dict[str, Any] | None:
    """The innertube browse endpoint's answer: the next page for a continuation token, or the whole list
    with its unavailable videos for yt-dlp's request to show them; None for anything it does not know."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return None
    if not isinstance(request, dict):
        return None
    token = _parse_continuation(request.get("continuation"))
    if token is not None:
        list_id, offset, shown = token
        fake = lists.get(list_id)
        return None if fake is None else continuation_response(fake, offset, shown=shown)
    browse_id = request.get("browseId")
    if (
        isinstance(browse_id, str)
        and browse_id.startswith("VL")
        and request.get("params") == SHOW_UNAVAILABLE
    ):
        fake = lists.get(browse_id.removeprefix("VL"))
        return None if fake is None else initial_data(fake, shown=True)
    return None


def continuation_response(fake: FakeList, offset: int, *, shown: bool) -> dict[str, Any]:
    """The browse endpoint's answer to a continuation token: the next page and, if more, a new token."""
    items = page_items(fake, offset, shown=shown)
    return {"onResponseReceivedActions": [{"appendContinuationItemsAction": {"continuationItems": items}}]}


def continuation_token(list_id: str, offset: int, *, shown: bool) -> str:
    return f"{_TOKEN_PREFIXES[shown]}:{list_id}:{offset}"


def _parse_continuation(token: object) -> tuple[str, int, bool] | None:
    """(list id, offset, unavailable videos shown) of one of our continuation tokens, else None."""
    prefix, _, rest = token.partition(":") if isinstance(token, str) else ("", "", "")
    list_id, _, offset = rest.rpartition(":")
    shown = [value for value, name in _TOKEN_PREFIXES.items() if name == prefix]
    if not shown or not offset.isdigit():
        return None
    return list_id, int(offset), shown[0]


def page_items(fake: FakeList, offset: int, *, shown: bool = False) -> list[dict[str, Any]]:
    """One page of entries from ``offset`` on, and a continuation item when more follow."""
    page_size = fake.page_size
    entries = fake.entries(shown)
    chunk: Sequence[ListedVideo] = entries[offset : offset + page_size]
    items = [_entry(fake, video, offset + number) for number, video in enumerate(chunk, start=1)]
    if offset + page_size < len(entries):
        token = continuation_token(fake.list_id, offset + page_size, shown=shown)
        items.append(
            {"continuationItemRenderer": {"continuationEndpoint": {"continuationCommand": {"token": token}}}}
        )
    return items


def _entry(fake: FakeList, video: ListedVideo, index: int) -> dict[str, Any]:
    if not fake.is_channel and video.unavailable:
        title = PLACEHOLDER_TITLES[video.unavailable]
        renderer = {
            "videoId": video.video_id,
            "title": {"runs": [{"text": title}]},
            "index": {"simpleText": str(index)},
            "isPlayable": False,
        }
        return {"playlistVideoRenderer": renderer}
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
