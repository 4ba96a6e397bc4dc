"""What to process: YouTube URLs and video ids from command-line arguments and `--file` lists.

`parse_video_id` knows every YouTube *video* URL form (watch, youtu.be, shorts, embed, live, ...) and
never raises. `read_inputs` turns arguments and files (one URL or id per line, `#` comments, blank
lines) into video ids in first-seen order, with duplicates collapsed and every unusable line reported
as a `BadInput` naming its file and line number. Playlists (`list=`) and channels (`@handle`, `/channel/`,
`/c/`, `/user/`, their tabs) become `Collection`s, which `studybuddy.youtube.expand` lists through Tor.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple
from urllib.parse import quote, unquote_plus

from studybuddy.errors import InputError
from studybuddy.models import VIDEO_ID_PATTERN
from studybuddy.text import DISPLAY_CHARS, BadInput, file_lines

__all__ = [
    "Collection",
    "Inputs",
    "parse_video_id",
    "read_inputs",
]


_YOUTUBE_HOSTS = frozenset({"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com"})
_SHORT_LINK_HOSTS = frozenset({"youtu.be", "www.youtu.be"})
_NOCOOKIE_HOSTS = frozenset({"youtube-nocookie.com", "www.youtube-nocookie.com"})
_ALL_HOSTS = _YOUTUBE_HOSTS | _SHORT_LINK_HOSTS | _NOCOOKIE_HOSTS
# First path segment that puts the video id in the second one: youtube.com/shorts/ID, /embed/ID, ...
_ID_PATH_PREFIXES = frozenset({"shorts", "embed", "live", "v", "e"})
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# A `#` at the start of a line or after whitespace starts a comment; `watch?v=ID#t=30` keeps its fragment.

_NOT_A_VIDEO = "not a YouTube video URL"
_NOT_UTF8 = "not valid UTF-8"
_VIDEO_AS_PLAYLIST = "a video id, not a playlist: use https://www.youtube.com/watch?v="
_CHANNEL_PREFIXES = ("channel", "c", "user")

CollectionKind = Literal["playlist", "channel"]


def parse_video_id(text: str) -> str | None:
    """The video id of a YouTube video URL or bare 11-character id, or None for anything else."""
    candidate = _unwrap(text)
    if VIDEO_ID_PATTERN.fullmatch(candidate):
        return candidate
    url = _youtube_url(candidate)
    return _valid_id(_id_in_url(url)) if url else None


@dataclass(frozen=True)
class Collection:
    """A playlist or channel named by an input line, with the URL that lists its videos."""

    kind: CollectionKind
    url: str  # https://www.youtube.com/playlist?list=ID or https://www.youtube.com/@handle/videos
    source: str  # "urls.txt:7" or "argument 2"
    text: str  # shortened for display


@dataclass
class Inputs:
    """The videos and collections to process, in first-seen order, and what could not be used."""

    video_ids: list[str] = field(default_factory=list)
    bad: list[BadInput] = field(default_factory=list)
    duplicates: int = 0
    collections: list[Collection] = field(default_factory=list)


def read_inputs(arguments: Sequence[str], files: Sequence[Path]) -> Inputs:
    """Collect video ids from arguments, then from each file in turn.

    Raises `InputError` when a file cannot be read, or when nothing at all was given (no video and
    no bad line).
    """
    collector = _Collector()
    for number, argument in enumerate(arguments, start=1):
        collector.add(f"argument {number}", argument)
    for path in files:
        _read_file(path, collector)
    inputs = collector.inputs
    if not inputs.video_ids and not inputs.bad and not inputs.collections:
        raise InputError(_nothing_given_message(files))
    return inputs


def _unwrap(text: str) -> str:
    """Drop surrounding whitespace and the <angle brackets> that mail and chat put around links."""
    return text.strip().removeprefix("<").removesuffix(">").strip()


class _YouTubeUrl(NamedTuple):
    host: str  # lower case, without user info and port
    segments: list[str]  # the path between slashes: "/shorts/ID/" gives ["shorts", "ID"]
    query: str


def _youtube_url(candidate: str) -> _YouTubeUrl | None:
    """The parts of an http(s) URL on a YouTube host (scheme optional), or None.

    Split the way RFC 3986 (appendix B) does it, with plain string operations that cannot fail.
    """
    if candidate.startswith("//"):
        candidate = f"https:{candidate}"
    elif not _SCHEME.match(candidate):
        candidate = f"https://{candidate}"
    scheme, _, rest = candidate.partition("://")
    address, _, query = rest.partition("#")[0].partition("?")
    authority, _, path = address.partition("/")
    host = authority.rpartition("@")[2].partition(":")[0].lower()
    if scheme.lower() not in ("http", "https") or host not in _ALL_HOSTS:
        return None
    return _YouTubeUrl(host, path.strip("/").split("/"), query)


def _id_in_url(url: _YouTubeUrl) -> str | None:
    """Where a YouTube URL puts its video id (not yet checked), or None when it names no video."""
    segments = url.segments
    if url.host in _SHORT_LINK_HOSTS:
        return segments[0] if len(segments) == 1 else None
    if len(segments) == 2 and segments[0] in _ID_PATH_PREFIXES:
        # youtube-nocookie.com only serves embeds
        return segments[1] if url.host in _YOUTUBE_HOSTS or segments[0] == "embed" else None
    if segments == ["watch"] and url.host in _YOUTUBE_HOSTS:
        return _query_value(url.query, "v")
    return None


def _valid_id(candidate: str | None) -> str | None:
    return candidate if candidate is not None and VIDEO_ID_PATTERN.fullmatch(candidate) else None


def _query_value(query: str, name: str) -> str | None:
    """The first non-empty value of `name` in a URL query string."""
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key == name and value:
            return unquote_plus(value)
    return None


def _collection(text: str) -> tuple[CollectionKind, str] | None:
    """The kind and listing URL of a playlist or channel URL, or None when it names neither.

    A playlist lists at /playlist?list=ID; a channel (any of its tabs) at its /videos tab.
    """
    url = _youtube_url(_unwrap(text))
    if url is None or url.host not in _YOUTUBE_HOSTS:
        return None
    first, *rest = url.segments
    list_id = _query_value(url.query, "list")
    if first in ("playlist", "watch") and list_id:
        return "playlist", f"https://www.youtube.com/playlist?list={quote(list_id, safe='')}"
    if first.startswith("@") and len(first) > 1:
        return "channel", f"https://www.youtube.com/{quote(first, safe='@')}/videos"
    if first in _CHANNEL_PREFIXES and rest and rest[0]:
        return "channel", f"https://www.youtube.com/{first}/{quote(rest[0], safe='')}/videos"
    return None


def _shorten(text: str) -> str:
    if len(text) <= DISPLAY_CHARS:
        return text
    return f"{text[: DISPLAY_CHARS - 3]}..."


class _Collector:
    """Accumulates ids (deduplicated in first-seen order) and bad inputs."""

    def __init__(self) -> None:
        self.inputs = Inputs()
        self._seen: set[str] = set()
        self._seen_collections: set[str] = set()

    def add(self, source: str, text: str) -> None:
        video_id = parse_video_id(text)
        if video_id is None:
            self._add_collection(source, text)
        elif video_id in self._seen:
            self.inputs.duplicates += 1
        else:
            self._seen.add(video_id)
            self.inputs.video_ids.append(video_id)

    def _add_collection(self, source: str, text: str) -> None:
        collection = _collection(text)
        if collection is None:
            self.add_bad(source, text, _NOT_A_VIDEO)
            return
        kind, url = collection
        list_id = _query_value(url.partition("?")[2], "list")
        if kind == "playlist" and list_id and VIDEO_ID_PATTERN.fullmatch(list_id):
            self.add_bad(source, text, f"{_VIDEO_AS_PLAYLIST}{list_id}")
        elif url in self._seen_collections:
            self.inputs.duplicates += 1
        else:
            self._seen_collections.add(url)
            self.inputs.collections.append(Collection(kind, url, source, _shorten(text.strip())))

    def add_bad(self, source: str, text: str, reason: str) -> None:
        self.inputs.bad.append(BadInput(source, _shorten(text.strip()), reason))


def _read_file(path: Path, collector: _Collector) -> None:
    """Add every non-blank, non-comment line of `path`."""
    for line in file_lines(path):
        if line.text is None:
            collector.add_bad(line.source, line.raw, _NOT_UTF8)
        else:
            collector.add(line.source, line.text)


def _nothing_given_message(files: Sequence[Path]) -> str:
    if not files:
        return "no video URLs or ids given"
    names = ", ".join(str(path) for path in files)
    where = "the file" if len(files) == 1 else "the files"
    return f"{names}: no video URLs in {where} (only blank lines and comments)"
