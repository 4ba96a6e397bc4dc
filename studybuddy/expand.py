"""Playlists and channels expanded to their videos, through the same Tor circuit and pacing as transcripts.

`Expander` lists a `Collection` (a playlist, or a channel's videos tab) with yt-dlp's `extract_flat`
(`in_playlist`): one page request per 100 videos, no request per video. It runs on a `Worker` of the run, so
its requests use that worker's SOCKS identity (its own circuit) and trust the same CA bundle; before each
listing it asks the run's `Pacer` for the exit budget exactly as a video does (one slot per listing). A
block cools the exit down and renews the circuit, network trouble backs off; both are bounded.

yt-dlp has no option for a CA bundle, and turning verification off would be unsafe. Its request handlers
build their TLS context in `_make_sslcontext` (with certifi's roots); `_trust_ca_bundle` wraps that method
so the context also trusts the bundle's CAs. Verification and host name checks stay on.

Entries come in playlist order with title, duration and (approximate, from "3 weeks ago") upload date when
YouTube lists them. `--limit` keeps the first N of each collection, `--since` drops videos listed as uploaded
before a date (videos without a date are kept); `order_videos` sorts for `--order`.
"""

from __future__ import annotations

import datetime
import functools
import logging
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from .config import ORDERS, Settings
from .errors import BlockedError, FetchError, InputError, TransientError
from .inputs import VIDEO_ID_PATTERN, BadInput, Collection, Inputs
from .metadata import ytdlp_base_options
from .pipeline import Pacer, RetryPolicy, RunStopped, Worker, WorkerFactory

__all__ = [
    "Expander",
    "ExpansionError",
    "ListedVideo",
    "list_videos",
    "order_videos",
    "plan_videos",
]

log = logging.getLogger(__name__)

_BLOCK_SIGNS = ("sign in to confirm", "not a bot", "captcha", "http error 429", "too many requests")
_GONE_SIGNS = ("does not exist", "private", "unavailable", "not available", "has been removed")


class ExpansionError(InputError):
    """A playlist or channel that cannot be listed (gone, private, empty, not a list)."""


@dataclass(frozen=True, slots=True)
class ListedVideo:
    """A video as its playlist or channel lists it (fields YouTube did not list are None)."""

    video_id: str
    title: str | None = None
    duration: float | None = None
    upload_date: str | None = None  # YYYY-MM-DD; from a relative date ("3 weeks ago") it is approximate


def list_videos(
    url: str, session: requests.Session, *, limit: int | None = None, since: datetime.date | None = None
) -> list[ListedVideo]:
    """The videos of a playlist or channel URL, in playlist order, listed through `session`'s proxy.

    Only the pages needed for `limit` videos are requested. Raises `ExpansionError` for a list that is gone,
    private, empty or really a video; `BlockedError` / `TransientError` for what a retry may cure.
    """
    import yt_dlp

    options = ytdlp_base_options(session) | {
        "extract_flat": "in_playlist",
        "compat_opts": ["no-youtube-unavailable-videos"],  # saves a request per listing
        "extractor_args": {"youtubetab": {"approximate_date": [""]}},  # dates from "3 weeks ago"
    }
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            if isinstance(session.verify, str):
                _trust_ca_bundle(ydl, session.verify)
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


class Expander:
    """Lists collections on one worker, paced like its videos, retrying blocks and network trouble."""

    def __init__(
        self,
        worker: Worker,
        pacer: Pacer,
        stop: threading.Event,
        retry: RetryPolicy,
        *,
        limit: int | None = None,
        since: datetime.date | None = None,
        lister: Callable[..., list[ListedVideo]] = list_videos,
    ) -> None:
        self.worker = worker
        self.pacer = pacer
        self.stop = stop
        self.retry = retry
        self.limit = limit
        self.since = since
        self._lister = lister

    def expand(self, collection: Collection) -> list[ListedVideo]:
        """The collection's videos; `ExpansionError` if it has none to give, `RunStopped` when stopping."""
        transient_tries = rotations = 0
        while True:
            self.pacer.before_video(self.worker, self.stop)
            try:
                videos = self._lister(collection.url, self.worker.session, limit=self.limit, since=self.since)
                self.pacer.after_video(self.worker)
                log.info("%s: %d videos listed", collection.url, len(videos))
                return videos
            except BlockedError as exc:
                if not self.worker.can_renew or rotations >= self.retry.max_rotations:
                    raise ExpansionError(f"{collection.url}: blocked by YouTube ({exc.reason})") from None
                rotations += 1
                self.pacer.on_blocked(self.worker, exc)
            except TransientError as exc:
                if transient_tries >= self.retry.max_retries:
                    raise ExpansionError(f"{collection.url}: {exc.reason}") from None
                delay = self.retry.backoff(transient_tries)
                transient_tries += 1
                log.info("%s: %s; retrying in %.1f s", collection.url, exc.reason, delay)
                if self.stop.wait(delay):
                    raise RunStopped from exc


@dataclass
class Plan:
    """The videos a run takes, in `--order`, and the collections that could not be listed."""

    video_ids: list[str]
    bad: list[BadInput]
    duplicates: int = 0  # videos (and lists) named more than once: each is taken once


def plan_videos(
    inputs: Inputs,
    settings: Settings,
    *,
    worker_factory: WorkerFactory,
    pacer: Pacer,
    retry: RetryPolicy,
    stop: threading.Event,
) -> Plan:
    """Direct videos, then each collection's videos (first seen wins), ordered for `settings.order`.

    The collections are listed on a worker of the run (same identity scheme, same CA bundle, same pacing),
    closed afterwards. A collection that cannot be listed is reported like a bad input line.
    """
    durations: dict[str, float | None] = dict.fromkeys(inputs.video_ids)
    plan = Plan([], [])
    listed = 0
    if inputs.collections:
        worker = Worker(0, settings=settings, proxy=worker_factory.proxy, run_id=worker_factory.run_id)
        expander = Expander(worker, pacer, stop, retry, limit=settings.limit, since=settings.since)
        try:
            for collection in inputs.collections:
                try:
                    videos = expander.expand(collection)
                except ExpansionError as exc:
                    reason = str(exc).removeprefix(f"{collection.url}: ")
                    plan.bad.append(BadInput(collection.source, collection.text, reason))
                    continue
                listed += len(videos)
                for video in videos:  # first seen keeps its place; a listed duration fills a gap
                    durations[video.video_id] = durations.get(video.video_id) or video.duration
        finally:
            worker.close()
    plan.video_ids = order_videos(list(durations), durations, settings.order)
    plan.duplicates = inputs.duplicates + len(inputs.video_ids) + listed - len(plan.video_ids)
    return plan


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
        yield ListedVideo(
            video_id,
            title=entry.get("title") if isinstance(entry.get("title"), str) else None,
            duration=_positive(entry.get("duration")),
            upload_date=_date_of(entry),
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
    cause = _root_cause(error)
    status = getattr(getattr(cause, "response", None), "status", None) or getattr(cause, "status", None)
    message = str(getattr(cause, "orig_msg", None) or getattr(cause, "msg", None) or cause).strip()
    message = message.removeprefix("ERROR: ").splitlines()[0] if message else type(cause).__name__
    lowered = message.lower()
    if status in (403, 429) or any(sign in lowered for sign in _BLOCK_SIGNS):
        return BlockedError(url, message)
    if isinstance(status, int) and status >= 500:
        return TransientError(url, f"HTTP {status}")
    if status is None and _is_network_error(cause):
        return TransientError(url, f"network error ({type(cause).__name__})")
    if any(sign in lowered for sign in _GONE_SIGNS):
        return ExpansionError(f"{url}: playlist or channel is gone or private ({message})")
    return ExpansionError(f"{url}: cannot be listed ({message})")


def _root_cause(error: Exception) -> BaseException:
    """The innermost exception behind yt-dlp's wrappers (`DownloadError.exc_info`, `ExtractorError.cause`)."""
    current: BaseException = error
    for _ in range(5):  # wrappers nest a few levels at most
        exc_info = getattr(current, "exc_info", None)
        inner = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None
        inner = getattr(current, "cause", None) or inner
        if not isinstance(inner, BaseException) or inner is current:
            break
        if getattr(inner, "status", None) is None and getattr(current, "expected", False):
            break  # an expected ExtractorError ("YouTube said: ...") is the message to show
        current = inner
    return current


def _is_network_error(error: BaseException) -> bool:
    import yt_dlp.networking.exceptions as network

    return isinstance(error, OSError | network.TransportError | network.RequestError)


def _trust_ca_bundle(ydl: Any, ca_bundle: str) -> None:
    """Make every yt-dlp request handler's TLS context also trust `ca_bundle` (verification stays on)."""
    for handler in ydl._request_director.handlers.values():
        handler._make_sslcontext = functools.partial(_context_trusting, handler._make_sslcontext, ca_bundle)


def _context_trusting(
    make_context: Callable[..., ssl.SSLContext], ca_bundle: str, *args: Any, **kwargs: Any
) -> ssl.SSLContext:
    context = make_context(*args, **kwargs)
    if context.verify_mode != ssl.CERT_NONE:
        context.load_verify_locations(cafile=ca_bundle)
    return context
