"""yt-dlp's subtitle download for one worker: the second way in, when youtube-transcript-api cannot get a
transcript (a PO token required, a player answer without tracks) or when `--transcripts ytdlp` prefers it.

Subtitles only, never media, through the worker's own session: the same proxy URL (so the same SOCKS
credentials and Tor circuit, or the same proxy), the same CA bundle. The fewest requests yt-dlp's YouTube
extractor can make for them:

- `player_client=web` only: the web client's answer is the watch page's own initial player response, so
  the page is the only player request (the default clients would add two or three player API calls).
  After youtube-transcript-api fetched the watch page already (`watch_page=False`), the page is skipped
  too (`player_skip=webpage`) and the web client's player API answers instead: YouTube sees one page
  view per video either way;
- `player_skip=configs,js,initial_data`: no client configs, no player JavaScript (subtitles need no
  signature or n-challenge solving, so no JS runtime either), no `next` API call for chapters;
- `skip=dash,hls`: no manifests. Translations are built here from the track's URL (`tlang`); yt-dlp's list
  of them only gives their names.

That is the watch page (or the player answer) and one caption request (json3; VTT when json3 is missing or
unreadable): two YouTube requests per video, counted on every fetch (`Subtitles.requests`). The web
client's caption URLs carry `exp=xpe` and need a PO token (`pot=`); yt-dlp asks its PO token providers. With
`pot_provider` the bgutil HTTP plugin gets the provider's base URL (`youtubepot-bgutilhttp:base_url`).
Without a token yt-dlp drops those tracks and says so in a warning, which becomes the reason here.

`cookies` (a Netscape file, checked by `cookiefile`) are loaded into this fetcher's own cookie jar, so they
travel only with this worker's identity; the file is never written, and cookies YouTube sets stay with the
identity that got them (a renewed worker starts from the file again).

Errors are the pipeline's kinds: a bot check, 403 or 429 is `BlockedError`, network trouble and 5xx are
`TransientError`, the rest `PermanentError` with yt-dlp's reason (secrets removed). A need for a JavaScript
runtime, should yt-dlp report one, is one line saying how to install deno or node.
"""

from __future__ import annotations

import functools
import html
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import requests

from studybuddy.errors import BlockedError, FetchError, PermanentError, TransientError
from studybuddy.models import Segment, Transcript, VideoMeta
from studybuddy.youtube.metadata import meta_from_info, ytdlp_base_options
from studybuddy.youtube.ytdlp_common import (
    BLOCK_SIGNS,
    YtDlpLogger,
    error_message,
    error_status,
    is_network_error,
    root_cause,
    trust_ca_bundle,
)

__all__ = [
    "EXTRACTOR_ARGS",
    "JS_RUNTIME_HINT",
    "SubtitleFetcher",
    "SubtitleTrack",
    "Subtitles",
    "classify",
    "js_runtimes",
    "parse_json3",
    "parse_vtt",
    "tracks_of",
]

log = logging.getLogger(__name__)

EXTRACTOR_ARGS: dict[str, dict[str, list[str]]] = {
    "youtube": {
        "player_client": ["web"],
        "player_skip": ["configs", "js", "initial_data"],
        "skip": ["dash", "hls"],
    }
}
JS_RUNTIMES: dict[str, dict[str, str]] = {"deno": {}, "node": {}}  # yt-dlp enables deno alone by default
JS_RUNTIME_HINT = (
    "yt-dlp needs a JavaScript runtime for this video: install deno (https://deno.com) or node "
    "(apt-get install nodejs)"
)
FORMATS = ("json3", "vtt")  # in order of preference
_BLOCK_SIGNS = (*BLOCK_SIGNS, "http error 403")
_JS_SIGNS = ("javascript runtime", "challenge solving failed", "signature solving failed")
_POT_SIGNS = ("po token was not provided", "require a po token")
_GONE_SIGNS = ("video unavailable", "is unavailable", "private video", "has been removed", "does not exist")
_AGE_SIGNS = ("confirm your age", "age-restricted", "inappropriate for some users")
_MAX_REASON = 160
_VTT_BLINK_S = 0.05  # generated VTT repeats a line in a cue this short between two rolling captions
_VTT_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{3})")
_VTT_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True, slots=True)
class SubtitleTrack:
    """A caption track as yt-dlp lists it: manual or generated (ASR), with a URL per format."""

    language_code: str
    name: str
    generated: bool
    urls: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Subtitles:
    transcript: Transcript
    meta: VideoMeta
    requests: int  # YouTube requests this fetch made (the PO token provider's are not YouTube's)


class SubtitleFetcher:
    """yt-dlp's subtitles for one worker's session. Not thread-safe: one per worker, closed with it."""

    def __init__(
        self,
        session: requests.Session,
        *,
        languages: Sequence[str] = ("en",),
        translate_to: str | None = None,
        pot_provider: str | None = None,
        cookies: Path | None = None,
        watch_page: bool = True,
    ) -> None:
        """`watch_page`: False when the watch page was just fetched by the first way in (see above)."""
        self._session = session
        self._watch_page = watch_page
        self._languages = tuple(languages)
        self._translate_to = translate_to
        self._pot_provider = pot_provider
        self._cookies = cookies
        proxy = session.proxies.get("https") or ""
        self._logger = YtDlpLogger([urlsplit(proxy).password])
        self._ydl: Any = None
        self._requests = 0

    def fetch(self, video_id: str) -> Subtitles:
        """Transcript and metadata of `video_id`; raises BlockedError, TransientError or PermanentError."""
        ydl = self._ydl or self._open()
        self._logger.warnings.clear()
        self._requests = 0
        try:
            info = ydl.extract_info(VideoMeta(video_id).url, download=False, process=False, ie_key="Youtube")
            track, target = self._choose(video_id, tracks_of(info))
            segments = self._download(video_id, track, target)
        except FetchError:
            raise
        except Exception as error:  # yt-dlp's errors, and network errors of the caption request
            raise classify(video_id, error, self._logger) from error
        finally:
            log.debug("%s: yt-dlp made %d YouTube requests", video_id, self._requests)
        transcript = Transcript(
            video_id=video_id,
            language=self._language_name(info, track, target),
            language_code=target or track.language_code,
            is_generated=track.generated,
            segments=segments,
            translated_from=track.language_code if target else None,
        )
        return Subtitles(transcript, meta_from_info(video_id, info), self._requests)

    def close(self) -> None:
        if self._ydl is not None:
            self._ydl.close()
            self._ydl = None

    # -- yt-dlp ----------------------------------------------------------------------------------------

    def _open(self) -> Any:
        import yt_dlp

        youtube = dict(EXTRACTOR_ARGS["youtube"])
        if not self._watch_page:
            youtube["player_skip"] = [*youtube["player_skip"], "webpage"]
        extractor_args: dict[str, Any] = {"youtube": youtube}
        if self._pot_provider:
            extractor_args["youtubepot-bgutilhttp"] = {"base_url": [self._pot_provider]}
        options = ytdlp_base_options(self._session) | {
            "logger": self._logger,
            "extractor_args": extractor_args,
            "js_runtimes": {name: dict(config) for name, config in JS_RUNTIMES.items()},
            # Nothing is written (no processing). These make yt-dlp warn about subtitles it dropped for want
            # of a PO token (instead of a debug line) and list the translations of manual tracks too.
            "writesubtitles": True,
            "writeautomaticsub": True,
        }
        ydl = yt_dlp.YoutubeDL(options)
        if isinstance(self._session.verify, str):
            trust_ca_bundle(ydl, self._session.verify)
        if self._cookies is not None:
            ydl.cookiejar.load(str(self._cookies))
        ydl.urlopen = _counting(ydl.urlopen, self._count)
        self._ydl = ydl
        return ydl

    def _count(self, url: str) -> None:
        host = (urlsplit(url).hostname or "").lower()
        if host == "youtube.com" or host.endswith(".youtube.com"):
            self._requests += 1

    def _download(self, video_id: str, track: SubtitleTrack, target: str | None) -> tuple[Segment, ...]:
        """The track's captions: json3, else VTT (when json3 is not offered, fails or is unreadable)."""
        parsers: dict[str, Callable[[str], tuple[Segment, ...]]] = {
            "json3": parse_json3,
            "vtt": functools.partial(parse_vtt, rolling=track.generated),
        }
        problem = "no json3 or VTT subtitles offered"
        for ext in FORMATS:
            url = track.urls.get(ext)
            if url is None:
                continue
            if target is not None:
                url = _with_query(url, tlang=target)
            with self._ydl.urlopen(url) as response:
                text = response.read().decode("utf-8", errors="replace")
            try:
                segments = parsers[ext](text)
            except ValueError:
                problem = f"unreadable {ext} subtitles"
                continue
            if segments:
                return segments
            problem = f"empty {ext} subtitles"
        if target is not None:
            raise PermanentError(
                video_id, f"subtitles in {track.language_code} cannot be translated to {target}"
            )
        raise TransientError(video_id, f"yt-dlp: {problem}")

    # -- choosing a track ------------------------------------------------------------------------------

    def _choose(self, video_id: str, tracks: list[SubtitleTrack]) -> tuple[SubtitleTrack, str | None]:
        """The track to fetch and the language to translate it to (None: as it is), chosen the way the
        other path chooses: `translate_to` first, then `languages` in order, manual before generated; when
        none of those exists, the spoken language's track translated to `translate_to` (else the first
        of `languages`)."""
        target = self._translate_to
        preferred = tuple(dict.fromkeys((target, *self._languages) if target else self._languages))
        for code in preferred:
            for track in tracks:  # manual tracks come first
                if track.language_code == code:
                    return track, (target if target and target != code else None)
        if self._missing_for_pot():  # yt-dlp dropped tracks it had no PO token for
            raise PermanentError(video_id, self._pot_reason(f"no subtitles in {', '.join(preferred)}"))
        if not tracks:
            raise PermanentError(video_id, "no subtitles (transcripts are disabled or none are offered)")
        spoken = [track for track in tracks if track.generated] or tracks
        return spoken[0], target or preferred[0]

    def _missing_for_pot(self) -> bool:
        return any(sign in warning.lower() for warning in self._logger.warnings for sign in _POT_SIGNS)

    def _pot_reason(self, what: str) -> str:
        if self._pot_provider:
            return f"{what}: YouTube requires a PO token and the provider at {self._pot_provider} gave none"
        return f"{what}: YouTube requires a PO token; run a PO token provider and pass --pot-provider URL"

    @staticmethod
    def _language_name(info: Mapping[str, Any], track: SubtitleTrack, target: str | None) -> str:
        if target is None:
            return f"{track.name} (auto-generated)" if track.generated else track.name
        wanted = ([target], [f"{target}-{track.language_code}"])  # yt-dlp's tlang of a manual track's
        for entries in (info.get("automatic_captions") or {}).values():  # translation is "de-en"
            for entry in entries:
                if parse_qs(urlsplit(str(entry.get("url"))).query).get("tlang") in wanted:
                    return _base_name(str(entry.get("name") or target))
        return target


def classify(video_id: str, error: BaseException, logger: YtDlpLogger) -> FetchError:
    """What a yt-dlp error (or a network error of a caption request) means for the video: a block, network
    trouble, or a permanent reason; `logger` redacts the message and holds this extraction's warnings."""
    cause = root_cause(error)
    status = error_status(cause)
    message = logger.redact(error_message(cause))[:_MAX_REASON]
    lowered = message.lower()
    said = " ".join(logger.warnings).lower()  # e.g. "Unable to download API page: HTTP Error 429"
    if status in (403, 429) or any(sign in lowered or sign in said for sign in _BLOCK_SIGNS):
        return BlockedError(video_id, f"blocked by YouTube ({message})")
    if status is not None and status >= 500:
        return TransientError(video_id, f"YouTube answered HTTP {status}")
    if status is None and is_network_error(cause):
        return TransientError(video_id, f"network error ({type(cause).__name__})")
    return PermanentError(video_id, _permanent_reason(lowered, message, status, said))


def _permanent_reason(lowered: str, message: str, status: int | None, said: str) -> str:
    if any(sign in lowered or sign in said for sign in _JS_SIGNS):
        return JS_RUNTIME_HINT
    if any(sign in lowered for sign in _AGE_SIGNS):
        return "age restricted"
    if any(sign in lowered for sign in _GONE_SIGNS):
        return "video is unavailable"
    return f"YouTube answered HTTP {status}" if status is not None else f"yt-dlp: {message}"


def js_runtimes() -> dict[str, Any]:
    """What yt-dlp finds of the JavaScript runtimes this path enables: name -> its info (name, version,
    path, supported) or None when not installed. yt-dlp registers its runtimes when imported."""
    import yt_dlp  # noqa: F401
    from yt_dlp.globals import supported_js_runtimes

    known = supported_js_runtimes.value
    return {name: known[name](path=None).info for name in JS_RUNTIMES if name in known}


def tracks_of(info: Mapping[str, Any]) -> list[SubtitleTrack]:
    """The original caption tracks in yt-dlp's info (manual first), read from their URLs: `lang` is the
    track's language, `kind=asr` a generated one; yt-dlp's translations (`tlang`) are left out."""
    found: dict[tuple[str, bool], tuple[str, dict[str, str]]] = {}
    for key in ("subtitles", "automatic_captions"):
        for entries in (info.get(key) or {}).values():
            for entry in entries if isinstance(entries, list) else ():
                url, ext = entry.get("url"), entry.get("ext")
                if not isinstance(url, str) or not isinstance(ext, str):
                    continue
                query = parse_qs(urlsplit(url).query)
                language = (query.get("lang") or [""])[0]
                if not language or "tlang" in query:
                    continue
                generated = (query.get("kind") or [""])[0] == "asr"
                _name, urls = found.setdefault((language, generated), (_base_name(entry.get("name")), {}))
                urls.setdefault(ext, url)
    tracks = [
        SubtitleTrack(language, name or language, generated, urls)
        for (language, generated), (name, urls) in found.items()
    ]
    return sorted(tracks, key=lambda track: track.generated)  # stable: manual first, in YouTube's order


def parse_json3(text: str) -> tuple[Segment, ...]:
    """Captions from YouTube's json3: `events` with `tStartMs`, `dDurationMs` and `segs[].utf8`; line-break
    events (`aAppend`) and empty ones are skipped. `ValueError` when it is not json3."""
    data = json.loads(text) if text.strip() else {"events": []}
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list):
        raise ValueError("not json3: no events")
    segments = []
    for event in events:
        pieces = event.get("segs") if isinstance(event, dict) else None
        if not isinstance(pieces, list) or event.get("aAppend"):
            continue
        caption = "".join(str(piece.get("utf8", "")) for piece in pieces if isinstance(piece, dict)).strip()
        if caption:
            start = float(event.get("tStartMs", 0)) / 1000
            segments.append(Segment(start, float(event.get("dDurationMs", 0)) / 1000, caption))
    return tuple(segments)


def parse_vtt(text: str, *, rolling: bool = False) -> tuple[Segment, ...]:
    """Captions from WebVTT: cue timings, text without tags and entities. Generated captions (`rolling`)
    roll: a cue repeats the previous cue's last line above its new one, and a blink cue repeats it alone;
    those repeats are left out. `ValueError` when it is not WebVTT."""
    if not text.lstrip("\ufeff").startswith("WEBVTT"):
        raise ValueError("not WebVTT")
    segments: list[Segment] = []
    previous_line = ""
    for block in re.split(r"\r?\n\r?\n", text):
        lines = block.splitlines()
        timing = next((index for index, line in enumerate(lines) if "-->" in line), None)
        if timing is None:
            continue
        start_text, _, end_text = lines[timing].partition("-->")
        start, end = _vtt_seconds(start_text), _vtt_seconds(end_text)
        spoken = [html.unescape(_VTT_TAG.sub("", line)).strip() for line in lines[timing + 1 :]]
        spoken = [line for line in spoken if line]
        repeats = rolling and bool(spoken) and spoken[0] == previous_line
        if repeats and (len(spoken) > 1 or end - start < _VTT_BLINK_S):  # a rolling caption's old line
            spoken = spoken[1:]
        if spoken:
            segments.append(Segment(start, round(max(0.0, end - start), 3), "\n".join(spoken)))
            previous_line = spoken[-1]
    return tuple(segments)


def _vtt_seconds(text: str) -> float:
    match = _VTT_TIME.search(text)
    if match is None:
        raise ValueError(f"not a WebVTT time: {text.strip()[:20]!r}")
    hours, minutes, seconds, millis = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def _base_name(name: object) -> str:
    """A language's name without yt-dlp's additions: "English (Original)", "German from English"."""
    text = str(name or "").strip()
    return text.removesuffix(" (Original)").removesuffix(" (auto-generated)").split(" from ")[0]


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
    return urlunsplit(parts._replace(query=urlencode(query | changes)))


def _counting(urlopen: Callable[..., Any], count: Callable[[str], None]) -> Callable[..., Any]:
    """yt-dlp's `urlopen`, counting each request's URL first (every request of the extractor passes it)."""

    def counted(request: Any) -> Any:
        count(request if isinstance(request, str) else str(getattr(request, "url", "")))
        return urlopen(request)

    return counted
