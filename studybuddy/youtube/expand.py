"""Playlists and channels expanded to their videos.

`list_videos` lists a playlist, or a channel's videos tab, with yt-dlp's `extract_flat` (`in_playlist`):
one page request per 100 videos, no request per video, through the session it is given (a worker's: see
`run.listing`, which paces and retries it like a video).

yt-dlp trusts the same CA bundle as the worker's session (`ytdlp_common.trust_ca_bundle`).

Entries come in playlist order with title, duration and (approximate, from "3 weeks ago") upload date when
YouTube lists them. `--limit` keeps the first N of each collection, `--since` drops videos listed as uploaded
before a date (videos without a date are kept); `order_videos` sorts for `--order`.

YouTube hides a playlist's private and deleted videos unless asked; yt-dlp asks (one more request per
playlist, none per channel), and lists them with the placeholder titles "[Private video]" and "[Deleted
video]". They come back as `ListedVideo.unavailable` ("private video", "deleted video"), so the run can
name the holes of a course instead of dropping them without a word, and never fetches them.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from studybuddy.config import ORDERS
from studybuddy.errors import BlockedError, FetchError, InputError, TransientError
from studybuddy.models import VIDEO_ID_PATTERN
from studybuddy.youtube.metadata import ytdlp_base_options
from studybuddy.youtube.ytdlp_common import (
    BLOCK_SIGNS,
    error_message,
    error_status,
    is_network_error,
    root_cause,
    trust_ca_bundle,
)

__all__ = [
    "ExpansionError",
    "ListedVideo",
    "list_videos",
    "order_videos",
]

log = logging.getLogger(__name__)

_GONE_SIGNS = ("does not exist", "private", "unavailable", "not available", "has been removed")
_PLACEHOLDERS = {"[Private video]": "private video", "[Deleted video]": "deleted video"}  # playlist entries


class ExpansionError(InputError):
    """A playlist or channel that cannot be listed (gone, private, empty, not a list)."""


@dataclass(frozen=True, slots=True)
class ListedVideo:
    """A video as its playlist or channel lists it (fields YouTube did not list are None)."""

    video_id: str
    title: str | None = None
    duration: float | None = None
    upload_date: str | None = None  # YYYY-MM-DD; from a relative date ("3 weeks ago") it is approximate
    unavailable: str | None = None  # "private video" or "deleted video": listed, but nothing to fetch


def list_videos(
    url: str, session: requests.Session, *, limit: int | None = None, since: datetime.date | None = None
) -> list[ListedVideo]:
    """The videos of a playlist or channel URL, in playlist order, listed through `session`'s proxy.

    Only the pages needed for `limit` videos are requested. Raises `ExpansionError` for a list that is gone,
    private, empty or really a video; `BlockedError` / `TransientError` for what a retry may cure.
    """
    import yt_dlp

    options = ytdlp_base_options(session) | {
        "extract_flat": "in_playlist",  # yt-dlp also asks for the private and deleted videos of a playlist
        "extractor_args": {"youtubetab": {"approximate_date": [""]}},  # dates from "3 weeks ago"
    }
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            if isinstance(session.verify, str):
                trust_ca_bundle(ydl, session.verify)
            info = ydl.extract_info(url, download=False, process=False)
            if not isinstance(info, dict) or info.get("_type") != "playlist":
                raise ExpansionError(f"{url}: names a single video, not a playlist or channel")
            videos = _select(_listed(url, info.get("entries") or ()), limit=limit, since=since)
    except yt_dlp.utils.YoutubeDLError as error:
        raise _classified(url, error) from None
    if not videos:
        what = "videos" if since is None else f"videos uploaded since {since.isoformat()}"
        raise ExpansionError(f"{url}: has no {what}")
    return videos


def order_videos(video_ids: Sequence[str], durations: Mapping[str, float | None], order: str) -> list[str]:
    """`video_ids` for `--order`: as given (`playlist`), or by listed duration, unknown durations last."""
    if order not in ORDERS:
        raise InputError(f"--order {order!r}: expected one of {', '.join(ORDERS)}")
    if order == "playlist":
        return list(video_ids)
    sign = 1 if order == "shortest" else -1
    known = [vid for vid in video_ids if durations.get(vid) is not None]
    unknown = [vid for vid in video_ids if durations.get(vid) is None]
    return sorted(known, key=lambda vid: sign * (durations[vid] or 0.0)) + unknown


def _listed(url: str, entries: Iterable[Any]) -> Iterator[ListedVideo]:
    """yt-dlp's flat entries as `ListedVideo`s; entries without a video id (e.g. nested lists) are skipped,
    and so, with a warning, are ids that are not video ids (they would become parts of file names)."""
    for entry in entries:
        video_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(video_id, str) or entry.get("ie_key") not in (None, "Youtube"):
            continue
        if VIDEO_ID_PATTERN.fullmatch(video_id) is None:
            log.warning("%s: left out an entry whose id %r is not a YouTube video id", url, video_id)
            continue
        title = entry.get("title") if isinstance(entry.get("title"), str) else None
        unavailable = _PLACEHOLDERS.get(title or "")
        yield ListedVideo(
            video_id,
            title=None if unavailable else title,
            duration=_positive(entry.get("duration")),
            upload_date=_date_of(entry),
            unavailable=unavailable,
        )


def _select(
    videos: Iterable[ListedVideo], *, limit: int | None, since: datetime.date | None
) -> list[ListedVideo]:
    """The first `limit` videos not listed as older than `since`, without duplicates; stops reading early."""
    oldest = since.isoformat() if since else None
    kept: list[ListedVideo] = []
    seen: set[str] = set()
    for video in videos:
        if limit is not None and len(kept) >= limit:
            break
        if video.video_id in seen or (oldest and video.upload_date and video.upload_date < oldest):
            continue
        seen.add(video.video_id)
        kept.append(video)
    return kept


def _date_of(entry: Mapping[str, Any]) -> str | None:
    upload_date = entry.get("upload_date")
    if isinstance(upload_date, str) and len(upload_date) == 8 and upload_date.isdigit():
        return f"{upload_date[:4]}-{upload_date[4:6]}-{upload_date[6:]}"
    timestamp = entry.get("timestamp")
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).date().isoformat()
    return None


def _positive(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _classified(url: str, error: Exception) -> FetchError | ExpansionError:
    """A yt-dlp error as a block, network trouble (both retried) or a one-line `ExpansionError`."""
    cause = root_cause(error)
    status = error_status(cause)
    message = error_message(cause)
    lowered = message.lower()
    if status in (403, 429) or any(sign in lowered for sign in BLOCK_SIGNS):
        return BlockedError(url, message)
    if status is not None and status >= 500:
        return TransientError(url, f"HTTP {status}")
    if status is None and is_network_error(cause):
        return TransientError(url, f"network error ({type(cause).__name__})")
    if any(sign in lowered for sign in _GONE_SIGNS):
        return ExpansionError(f"{url}: playlist or channel is gone or private ({message})")
    return ExpansionError(f"{url}: cannot be listed ({message})")
