"""What the fake ``www.youtube.com`` of the test bed serves: its catalogue and the answer to each request.

The videos come from ``catalogue.json`` (ids, titles, channels, durations, languages, segment and chapter
counts, special ``case``); their transcripts are generated from the file's seed and the video id, so every
run serves the same text. Every page body is built by ``tests.fakes.youtube_pages``. The network side
(TLS listeners, limits, statistics) is ``tests.bed.youtube_server``.

Request kinds: ``GET /watch?v=ID`` (watch), ``POST /youtubei/v1/player?key=..`` (player),
``GET /api/timedtext?v=ID&lang=..[&tlang=..][&fmt=json3|vtt]`` (captions: YouTube's XML, json3 or
WebVTT; a track URL marked ``exp=xpe`` answers an empty body unless ``pot=`` carries a token of the fake PO
token provider made for this video), ``GET /oembed?url=..&format=json`` (oembed),
``GET /playlist?list=ID``, a channel's ``/@handle/videos`` (also ``/channel/ID``, ``/c/``, ``/user/``) and
``POST /youtubei/v1/browse`` continuations (list: pages built by ``tests.fakes.youtube_lists``; the
playlists, gone playlists and empty channels come from the catalogue file, and every channel of the
catalogue has a videos tab); anything else is "other" and gets 404.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

from tests.fakes import youtube_lists as yl
from tests.fakes import youtube_pages as yt
from tests.fakes.pot_provider import token_binding
from tests.fakes.youtube_pages import FakeTrack, FakeVideo

CATALOGUE_PATH = Path(__file__).with_name("catalogue.json")
BLOCK_STYLES = ("bot_check", "http_429", "recaptcha")
KINDS = ("watch", "player", "captions", "oembed", "list", "other")
CASES = (
    "normal",
    "transcripts_disabled",
    "unavailable",
    "age_restricted",
    "po_token_required",
    "empty_captions",
    "oembed_only",
    "multi_track",
    "po_token_manual_only",
    "geo_blocked",
)
LANGUAGE_NAMES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "ja": "Japanese",
    "zh-Hans": "Chinese (Simplified)",
    "nl": "Dutch",
}
_PHRASES = (
    "so today we are going to talk about the basics",
    "the key idea here is surprisingly simple",
    "let's look at an example on the board",
    "remember what we said last week",
    "this is where it gets interesting",
    "[Music]",
    "we'll keep questions for the Q&A at the end",
    "as you can see on this slide",
    "now, why does this matter?",
    "write this down, it will be on the exam",
    "a quick recap before we move on",
    "think of it as a chain of small steps",
    "the second part builds on the first",
    "here's a common mistake students make",
    "and that's the whole trick",
)

Reply = tuple[int, str, str]  # status, content type, body
_HTML, _JSON, _XML, _TEXT = "text/html; charset=utf-8", "application/json", "text/xml", "text/plain"
_VTT = "text/vtt; charset=utf-8"
_TOO_MANY: Reply = (429, _TEXT, "Too Many Requests")
_NOT_FOUND: Reply = (404, _TEXT, "Not Found")
# What a blocked exit still gets an answer to (a watch page or a player answer); the rest gets 429.
_ANSWERED_WHILE_BLOCKED = {("watch", "bot_check"), ("watch", "recaptcha"), ("player", "bot_check")}


@dataclass(frozen=True)
class CatalogueVideo:
    """A video of the catalogue and its special case (one of ``CASES``)."""

    video: FakeVideo
    case: str = "normal"
    blocked_on: frozenset[str] | None = None  # geo_blocked: the exits it is unplayable on (None: all)

    def for_exit(self, exit_address: str | None) -> FakeVideo:
        """The video as an exit sees it: a geo-blocked one is unplayable there, with no captions."""
        if self.case != "geo_blocked" or (
            self.blocked_on is not None and exit_address not in self.blocked_on
        ):
            return self.video
        return dataclasses.replace(self.video, tracks=(), playability=dict(yt.GEO_BLOCKED))


Catalogue = dict[str, CatalogueVideo]


def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    """The catalogue file's videos by id, transcripts generated from its seed."""
    data = json.loads(path.read_text(encoding="utf-8"))
    entries = (catalogue_video(entry, data["seed"]) for entry in data["videos"])
    return {entry.video.video_id: entry for entry in entries}


def catalogue_video(entry: Mapping[str, Any], seed: int) -> CatalogueVideo:
    """One catalogue entry as a FakeVideo shaped by its case."""
    case = entry.get("case", "normal")
    if case not in CASES:
        raise ValueError(f"catalogue video {entry['id']}: unknown case {case!r}")
    rng = random.Random(f"{seed}:{entry['id']}")
    duration = int(entry["duration"])
    tracks = _tracks(entry, case)
    playability = {"unavailable": yt.UNAVAILABLE, "age_restricted": yt.AGE_RESTRICTED}.get(case, yt.PLAYABLE)
    video = FakeVideo(
        video_id=entry["id"],
        title=entry["title"],
        channel=entry["channel"],
        length_seconds=duration,
        keywords=tuple(word.lower() for word in entry["title"].split()[:3]),
        description=f"{entry['title']}\nA lecture by {entry['channel']}.",
        upload_date=f"20{rng.randrange(10, 25)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        chapters=_chapters(int(entry.get("chapters", 0)), duration),
        tracks=() if case in ("transcripts_disabled", "unavailable") else tracks,
        translation_languages=tuple(LANGUAGE_NAMES.items()),
        segments=transcript_segments(rng, int(entry["segments"]), duration),
        playability=dict(playability),
        translation_source=int(entry.get("translation_source", 0)),
    )
    blocked_on = entry.get("blocked_on")
    return CatalogueVideo(video, case, None if blocked_on is None else frozenset(blocked_on))


def _tracks(entry: Mapping[str, Any], case: str) -> tuple[FakeTrack, ...]:
    """The entry's ``tracks`` (``language``, ``generated``, ``po_token``), else one per ``languages`` code."""
    described = entry.get("tracks") or [
        {
            "language": code,
            "generated": entry.get("generated", False),
            "po_token": case == "po_token_required",
        }
        for code in entry["languages"]
    ]
    return tuple(
        FakeTrack(
            track["language"],
            LANGUAGE_NAMES.get(track["language"], track["language"]),
            generated=bool(track.get("generated", False)),
            po_token_required=bool(track.get("po_token", False)),
        )
        for track in described
    )


def transcript_segments(
    rng: random.Random, count: int, duration: int
) -> tuple[tuple[float, float, str], ...]:
    """``count`` captions spread over ``duration`` seconds, some of two lines, escaped like YouTube's XML."""
    step = duration / count
    segments = []
    for index in range(count):
        lines = [rng.choice(_PHRASES) for _ in range(rng.choice((1, 1, 2)))]
        text = html.escape("\n".join(lines), quote=False)
        segments.append((round(index * step, 2), round(step * rng.uniform(0.8, 1.0), 2), text))
    return tuple(segments)


def _chapters(count: int, duration: int) -> tuple[tuple[float, str], ...]:
    return tuple((float(duration * index // count), f"Part {index + 1}") for index in range(count))


@dataclass(frozen=True)
class SiteOptions:
    """Switches of the whole site: ``manual_po_tokens`` marks every manual track ``exp=xpe`` (each needs a
    PO token; generated tracks do not), ``broken_formats`` answers those caption formats (``json3``,
    ``vtt``) with unreadable data."""

    manual_po_tokens: bool = False
    broken_formats: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SiteOptions:
        return cls(bool(data.get("manual_po_tokens")), frozenset(data.get("broken_formats", ())))

    def as_json(self) -> dict[str, Any]:
        return {"manual_po_tokens": self.manual_po_tokens, "broken_formats": sorted(self.broken_formats)}


def youtube_answer(
    catalogue: Catalogue,
    kind: str,
    video_id: str | None,
    query: Mapping[str, str],
    block: str | None,
    exit_address: str | None = None,
    options: SiteOptions = SiteOptions(),
) -> Reply:
    """What www.youtube.com answers to a request of ``kind`` from ``exit_address`` (``block``: the exit's
    block style; ``options``: the site's switches)."""
    known = _as_configured(catalogue.get(video_id or ""), options)
    if block is not None and (kind, block) not in _ANSWERED_WHILE_BLOCKED:
        return _TOO_MANY
    if kind == "list":
        return _list_answer(catalogue, query)
    if kind == "watch" and video_id:
        if block == "recaptcha":
            return 200, _HTML, yt.recaptcha_page()
        return 200, _HTML, _watch_page(known or _unknown_video(video_id), exit_address)
    if kind == "player" and video_id:
        if query.get("key", yt.API_KEY) != yt.API_KEY:  # clients that send a key must send the right one
            return 400, _JSON, json.dumps({"error": {"code": 400, "message": "API key not valid."}})
        video = (known or _unknown_video(video_id)).for_exit(exit_address)
        if block == "bot_check":
            video = dataclasses.replace(video, tracks=(), playability=dict(yt.BOT_CHECK))
        details = not (known and known.case == "oembed_only")
        return 200, _JSON, json.dumps(yt.player_response(video, with_details=details))
    tracks = known.for_exit(exit_address).tracks if known else ()
    if kind == "captions" and known and query.get("lang") in {t.language_code for t in tracks}:
        if query.get("exp") == "xpe" and token_binding(query.get("pot", "")) != video_id:
            return 200, _XML, ""  # what YouTube answers a caption URL that needs a PO token without one
        if query.get("fmt") in options.broken_formats:
            return 200, _JSON, '{"events": [{"tStartMs": 0, "segs": [{"utf8": "cut o'
        return _captions(known, query)
    if kind == "oembed" and known and known.case != "unavailable":
        oembed = {"title": known.video.title, "author_name": known.video.channel, "type": "video"}
        return 200, _JSON, json.dumps(oembed)
    return _NOT_FOUND


def _as_configured(entry: CatalogueVideo | None, options: SiteOptions) -> CatalogueVideo | None:
    if entry is None or not options.manual_po_tokens:
        return entry
    tracks = tuple(
        track if track.generated else dataclasses.replace(track, po_token_required=True)
        for track in entry.video.tracks
    )
    return dataclasses.replace(entry, video=dataclasses.replace(entry.video, tracks=tracks))


def _unknown_video(video_id: str) -> CatalogueVideo:
    """What YouTube says of an id it does not know."""
    video = FakeVideo(video_id=video_id, title="", tracks=(), chapters=(), playability=dict(yt.UNAVAILABLE))
    return CatalogueVideo(video, "unavailable")


def _watch_page(entry: CatalogueVideo, exit_address: str | None) -> str:
    if entry.case == "oembed_only":
        return yt.watch_page(entry.video, embed_player_response=False, meta_titles=False)
    return yt.watch_page(entry.for_exit(exit_address))


def _captions(entry: CatalogueVideo, query: Mapping[str, str]) -> Reply:
    """The track in the asked format (`fmt=json3`, `fmt=vtt`, else YouTube's XML), translated with `tlang`."""
    if entry.case == "empty_captions":
        return 200, _XML, ""
    segments = entry.video.segments
    translate_to = query.get("tlang")
    if translate_to:
        segments = tuple((start, duration, f"[{translate_to}] {text}") for start, duration, text in segments)
    if query.get("fmt") == "json3":
        return 200, _JSON, yt.caption_json3(segments, generated=query.get("kind") == "asr")
    if query.get("fmt") == "vtt":
        return 200, _VTT, yt.caption_vtt(segments)
    return 200, _XML, yt.caption_xml(segments)


@dataclass(frozen=True)
class SiteLists:
    """The playlists and channel videos tabs of the fake site, by the path (and query) that lists them."""

    by_path: dict[str, yl.FakeList]  # "/playlist?list=PL..", "/@handle/videos", "/channel/UC../videos"
    by_id: dict[str, yl.FakeList]
    gone: frozenset[str]  # playlist ids that answer "does not exist"


_LISTS: dict[int, SiteLists] = {}  # by id() of the catalogue dict they were built from


def site_lists(catalogue: Catalogue, path: Path = CATALOGUE_PATH) -> SiteLists:
    """The catalogue file's playlists, gone playlists and empty channels, and one channel per channel name."""
    if id(catalogue) in _LISTS:
        return _LISTS[id(catalogue)]
    data = json.loads(path.read_text(encoding="utf-8"))
    lists: list[tuple[str, yl.FakeList]] = []
    for entry in data.get("playlists", []):
        listed = _listed(catalogue, entry.get("videos", ()), entry.get("unavailable", {}))
        listed = listed or _scale_videos(int(entry.get("scale", 0)))
        lists.append((f"/playlist?list={entry['id']}", yl.FakeList(entry["id"], entry["title"], listed)))
    channels: dict[str, list[str]] = {}
    for video_id, item in catalogue.items():
        channels.setdefault(item.video.channel, []).append(video_id)
    named = [
        (name, "@" + "".join(c for c in name.lower() if c.isalnum()), ids) for name, ids in channels.items()
    ]
    named += [(entry["title"], entry["handle"], []) for entry in data.get("empty_channels", [])]
    for title, handle, ids in named:
        channel = yl.FakeList(channel_id(handle), title, _listed(catalogue, ids), is_channel=True)
        paths = (f"/{handle}", f"/c/{handle[1:]}", f"/user/{handle[1:]}", f"/channel/{channel.list_id}")
        lists += [(f"{path}/videos", channel) for path in paths]
    built = SiteLists(
        dict(lists), {fake.list_id: fake for _, fake in lists}, frozenset(data.get("gone_playlists", []))
    )
    _LISTS[id(catalogue)] = built
    return built


def channel_id(handle: str) -> str:
    """A stable 24-character ``UC...`` id for a channel handle."""
    digest = hashlib.sha256(handle.encode()).hexdigest()
    return f"UC{digest[:22]}"


def _listed(
    catalogue: Catalogue, video_ids: Sequence[str], unavailable: Mapping[str, str] | None = None
) -> tuple[yl.ListedVideo, ...]:
    """The catalogue's videos of `video_ids`, and the ids `unavailable` names as private or deleted."""
    gone = unavailable or {}
    return tuple(
        yl.ListedVideo(vid, "", 0, unavailable=gone[vid])
        if vid in gone
        else yl.ListedVideo(vid, catalogue[vid].video.title, catalogue[vid].video.length_seconds)
        for vid in video_ids
        if vid in catalogue or vid in gone
    )


def _scale_videos(count: int) -> tuple[yl.ListedVideo, ...]:
    """``count`` generated videos (ids ``sc`` + 9 digits, not in the catalogue), durations 1 to 60 minutes."""
    return tuple(
        yl.ListedVideo(f"sc{n:09d}", f"Scale video {n}", 60 + (n * 7919) % 3540) for n in range(count)
    )


def _list_answer(catalogue: Catalogue, query: Mapping[str, str]) -> Reply:
    lists = site_lists(catalogue)
    if query.get("_browse") is not None:
        answer = yl.browse_answer(lists.by_id, query["_browse"].encode())
        if answer is None:
            return (
                400,
                _JSON,
                json.dumps({"error": {"code": 400, "message": "Request contains an invalid argument."}}),
            )
        return 200, _JSON, json.dumps(answer)
    path = query["_path"]
    found = lists.by_path.get(path)
    if found is not None:
        return 200, _HTML, yl.list_page(found)
    if path.startswith("/playlist?list="):
        return 200, _HTML, yl.gone_page()  # gone, private or never there: YouTube says the same
    return _NOT_FOUND


def _list_path(parts: SplitResult, query: Mapping[str, str]) -> str | None:
    """The listing path of a playlist or channel page request, or None for any other page."""
    segments = parts.path.strip("/").split("/")
    if segments == ["playlist"] and query.get("list"):
        return f"/playlist?list={query['list']}"
    if segments[0].startswith("@") and segments[1:] in ([], ["videos"]):
        return f"/{segments[0]}/videos"
    if (
        segments[0] in ("channel", "c", "user")
        and len(segments) in (2, 3)
        and segments[2:] in ([], ["videos"])
    ):
        return f"/{segments[0]}/{segments[1]}/videos"
    return None


def classify_request(method: str, target: str, body: bytes) -> tuple[str, str | None, dict[str, str]]:
    """The request's kind, its video id (or None) and its query parameters."""
    parts = urlsplit(target)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    route = (method, parts.path)
    list_path = _list_path(parts, query) if method == "GET" else None
    if list_path is not None:
        return "list", None, query | {"_path": list_path}
    if route == ("POST", "/youtubei/v1/browse"):
        return "list", None, query | {"_browse": body.decode("utf-8", "replace")}
    if route == ("GET", "/watch"):
        return "watch", query.get("v"), query
    if route == ("POST", "/youtubei/v1/player"):
        try:
            video_id = json.loads(body or b"{}").get("videoId")
        except (ValueError, AttributeError):
            video_id = None
        return "player", video_id if isinstance(video_id, str) else None, query
    if route == ("GET", "/api/timedtext"):
        return "captions", query.get("v"), query
    if route == ("GET", "/oembed"):
        watched = parse_qs(urlsplit(query.get("url", "")).query).get("v", [None])[0]
        return "oembed", watched, query
    return "other", None, query
