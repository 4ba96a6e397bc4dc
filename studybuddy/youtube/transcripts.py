"""Transcripts and metadata for one worker, over the worker's own `requests.Session`.

`TranscriptFetcher` wraps one `YouTubeTranscriptApi` (not thread-safe: one per worker) built on the worker's
session, so every request goes through the worker's Tor circuit. A fetch costs three YouTube requests (watch
page, innertube player POST, caption track); the metadata is parsed from the first two (see `metadata`).
When the library cannot get a transcript that yt-dlp may (a PO token required, a player answer without
tracks), yt-dlp's subtitle path tries on the same session (`ytdlp_subtitles`: the web client's player
answer and the captions, two more requests); `SubtitleOptions.first == "ytdlp"` makes it the first way in.

Which transcript: with `translate_to` set, an original in that language comes first, then `languages` in
order (manual before generated within a language). When none of them exists, a transcript is translated to
`translate_to` (else to the first of `languages`): the track YouTube translates from itself (its player
answer names it), else the automatic track (it is in the spoken language), else the first track that can
be translated. With `translate_to` set, a transcript chosen in another language is translated to it. A
manual track that YouTube serves only with a PO token gives way to the automatic track of its language
(translated alike); the transcript says so (`fallback_reason`), and so does the note's link line.

Every library, `requests` or SOCKS exception is mapped, in one table (`_RULES`), to one of four kinds:

    BlockedError    RequestBlocked, IpBlocked (429, reCAPTCHA), HTTP 429, HTTP 403 (YouTube refuses an exit
                    with it, as it does when listing playlists), a "not a bot" check, and a cookie consent
                    page that cannot be passed (it depends on the exit's country: another exit helps)
    TransientError  connection, TLS, proxy/SOCKS and timeout errors, HTTP 5xx, data that cannot be parsed
    PermanentError  transcripts disabled, no transcript, unavailable, unplayable, age restricted, invalid id,
                    not translatable, PO token required, other HTTP 4xx; geo-blocked ("not made this video
                    available in your country") is its `GeoBlockedError`: another exit may play it
    BugError        TypeError, AttributeError, KeyError, IndexError...: the library (or this code) no longer
                    reads what YouTube sends. Named with the library versions, the traceback logged at debug
                    level, recorded as `error` and not retried: a flaky network is not the cause
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree.ElementTree import ParseError

import requests
import socks
import urllib3
from youtube_transcript_api import (
    AgeRestricted,
    FailedToCreateConsentCookie,
    FetchedTranscript,
    InvalidVideoId,
    IpBlocked,
    NoTranscriptFound,
    NotTranslatable,
    PoTokenRequired,
    RequestBlocked,
    TranscriptList,
    TranscriptsDisabled,
    TranslationLanguageNotAvailable,
    VideoUnavailable,
    VideoUnplayable,
    YouTubeDataUnparsable,
    YouTubeRequestFailed,
    YouTubeTranscriptApi,
    YouTubeTranscriptApiException,
)
from youtube_transcript_api import Transcript as TrackHandle

from studybuddy.errors import (
    BlockedError,
    BugError,
    FetchError,
    GeoBlockedError,
    PermanentError,
    TransientError,
)
from studybuddy.models import VIDEO_ID_PATTERN, Segment, Transcript, VideoMeta
from studybuddy.store.output import atomic_write_text, id_in_path
from studybuddy.text import one_line
from studybuddy.youtube.metadata import PageRecorder, collect_metadata, translation_source

if TYPE_CHECKING:
    from studybuddy.youtube.ytdlp_subtitles import SubtitleFetcher

log = logging.getLogger(__name__)

_MAX_REASON_LENGTH = 120


@dataclass(frozen=True, slots=True)
class SubtitleOptions:
    """How the second way in (yt-dlp's subtitles, see `ytdlp_subtitles`) is used: `first` is "api" (it is
    the fallback) or "ytdlp" (it comes first); the PO token provider and cookies are yt-dlp's alone."""

    first: str = "api"
    pot_provider: str | None = None
    cookies: Path | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A fetched transcript and what is known about its video."""

    transcript: Transcript
    meta: VideoMeta


class TranscriptFetcher:
    """Fetches transcripts for one worker. Not thread-safe: make one per worker and session."""

    def __init__(
        self,
        session: requests.Session,
        *,
        languages: Sequence[str] = ("en",),
        translate_to: str | None = None,
        use_ytdlp: bool = True,
        debug_dir: Path | None = None,
        subtitles: SubtitleOptions | None = None,
    ) -> None:
        self._languages = (languages,) if isinstance(languages, str) else tuple(languages)
        if not self._languages:
            raise ValueError("languages must name at least one language code")
        self._session = session
        self._translate_to = translate_to
        self._use_ytdlp = use_ytdlp
        self._debug_dir = debug_dir  # keep YouTube's raw answers here (DEBUG_KEEP_TEMP)
        self._recorder = PageRecorder()
        session.hooks["response"].append(self._recorder)
        self._api = YouTubeTranscriptApi(http_client=session)
        self._subtitle_options = subtitles or SubtitleOptions()
        self._subtitles: SubtitleFetcher | None = None  # yt-dlp's path, made when first needed

    def fetch(self, video_id: str) -> FetchResult:
        """Transcript and metadata of `video_id`; raises BlockedError, TransientError or PermanentError."""
        if VIDEO_ID_PATTERN.fullmatch(video_id) is None:  # it goes into URLs and, with debug_dir, a path
            raise PermanentError(video_id, "not a YouTube video id")
        self._recorder.reset(video_id)
        try:
            transcript, known = self._either_way(video_id)
            meta = collect_metadata(
                video_id, self._recorder, self._session, use_ytdlp=self._use_ytdlp, known=known
            )
        except Exception as error:
            mapped = classify(video_id, error)
            if mapped is None:  # our own FetchError from _choose, or an error we do not know: unchanged
                raise
            if isinstance(mapped, BugError):
                log.debug("%s: %s", video_id, mapped.reason, exc_info=error)
            raise mapped from error
        finally:
            if self._debug_dir is not None:
                self._keep_pages(self._debug_dir / id_in_path(video_id))
            self._recorder.reset()
        return FetchResult(transcript, meta)

    def _keep_pages(self, folder: Path) -> None:
        pages = {"watch.html": self._recorder.watch_page, "player.json": self._recorder.player_response}
        for name, text in pages.items():
            if text is not None:
                atomic_write_text(folder / name, text)

    def close(self) -> None:
        """Detach from the session (whoever made the session closes it)."""
        hooks = self._session.hooks["response"]
        if self._recorder in hooks:
            hooks.remove(self._recorder)
        if self._subtitles is not None:
            self._subtitles.close()

    def _either_way(self, video_id: str) -> tuple[Transcript, VideoMeta | None]:
        """youtube-transcript-api, and yt-dlp's subtitles when it cannot get them (a PO token required, a
        player answer without tracks); yt-dlp alone with `--transcripts ytdlp`. The metadata yt-dlp read
        comes along (None on the first way: the recorded pages have it)."""
        if self._subtitle_options.first != "api":
            return self._via_ytdlp(video_id)
        try:
            return self._fetch_transcript(video_id), None
        except _YTDLP_MAY_GET as error:
            cause: PoTokenRequired | TranscriptsDisabled = error
        log.info("%s: %s; trying yt-dlp's subtitles", video_id, type(cause).__name__)
        # outside the except block, so yt-dlp's errors are not chained to the library's
        if isinstance(cause, PoTokenRequired):  # yt-dlp's reason says how to get a token
            return self._via_ytdlp(video_id, because="they need a PO token")
        return self._via_ytdlp(
            video_id, because="the player answer listed none", kept=classify(video_id, cause)
        )

    def _via_ytdlp(
        self, video_id: str, *, because: str | None = None, kept: FetchError | None = None
    ) -> tuple[Transcript, VideoMeta | None]:
        """yt-dlp's subtitles, the note saying `because` when it is the fallback; a permanent failure is
        reported as `kept` when that is given."""
        if self._subtitles is None:
            from studybuddy.youtube.ytdlp_subtitles import SubtitleFetcher

            options = self._subtitle_options
            self._subtitles = SubtitleFetcher(
                self._session,
                languages=self._languages,
                translate_to=self._translate_to,
                pot_provider=options.pot_provider,
                cookies=options.cookies,
                watch_page=because is None,  # as the fallback: the library just fetched the page
            )
        try:
            found = self._subtitles.fetch(video_id)
        except PermanentError as error:
            if kept is None:
                raise
            raise kept from error
        transcript = found.transcript
        if because is not None:
            transcript = dataclasses.replace(transcript, fallback_reason=f"by yt-dlp: {because}")
        return transcript, found.meta

    def _fetch_transcript(self, video_id: str) -> Transcript:
        listing = self._api.list(video_id)
        track, translate_to = self._choose(video_id, listing)
        fallback_reason = None
        try:
            fetched = _fetch_track(track, translate_to)
        except PoTokenRequired:
            automatic = _automatic_twin(listing, track)
            if automatic is None:
                raise
            fallback_reason = f"the {track.language} captions need a PO token"
            log.info("%s: %s; using the automatic ones", video_id, fallback_reason)
            track = automatic
            fetched = _fetch_track(track, translate_to)
        return Transcript(
            video_id=video_id,
            language=fetched.language,
            language_code=fetched.language_code,
            is_generated=fetched.is_generated,
            segments=tuple(Segment(s.start, s.duration, s.text) for s in fetched.snippets),
            translated_from=track.language_code if translate_to else None,
            fallback_reason=fallback_reason,
        )

    def _choose(self, video_id: str, listing: TranscriptList) -> tuple[TrackHandle, str | None]:
        """The track to fetch and the language to translate it to (None: as it is)."""
        target = self._translate_to
        preferred = tuple(dict.fromkeys((target, *self._languages) if target else self._languages))
        try:
            chosen = listing.find_transcript(preferred)
        except NoTranscriptFound:
            return self._translate_any(video_id, listing, preferred, target or self._languages[0])
        if target is None or chosen.language_code == target:
            return chosen, None
        return chosen, target

    def _translate_any(
        self, video_id: str, listing: TranscriptList, preferred: tuple[str, ...], target: str
    ) -> tuple[TrackHandle, str | None]:
        for track in self._translation_sources(listing):
            if any(language.language_code == target for language in track.translation_languages):
                return track, target
        available = ", ".join(dict.fromkeys(track.language_code for track in listing)) or "none"
        raise PermanentError(video_id, f"no transcript in {', '.join(preferred)} (available: {available})")

    def _translation_sources(self, listing: TranscriptList) -> Iterator[TrackHandle]:
        """Tracks to translate from, best first: the one YouTube names, the automatic ones (they are in the
        spoken language), then all as listed (manual ones first, in whatever language YouTube lists first)."""
        named = translation_source(self._recorder.player_response)
        if named is not None:
            code, generated = named
            find = (
                listing.find_generated_transcript if generated else listing.find_manually_created_transcript
            )
            try:
                yield find([code])
            except NoTranscriptFound:
                log.debug("%s: YouTube's translation source %s is not listed", listing.video_id, code)
        yield from (track for track in listing if track.is_generated)
        yield from listing


def _fetch_track(track: TrackHandle, translate_to: str | None) -> FetchedTranscript:
    return (track.translate(translate_to) if translate_to else track).fetch()


def _automatic_twin(listing: TranscriptList, track: TrackHandle) -> TrackHandle | None:
    """The automatic track in the language of the manual `track`, or None."""
    if track.is_generated:
        return None
    try:
        return listing.find_generated_transcript([track.language_code])
    except NoTranscriptFound:
        return None


def classify(video_id: str, error: BaseException) -> FetchError | None:
    """The FetchError that `error` (from the library, requests or SOCKS) means, or None if it is unknown."""
    for rule in _RULES:
        if isinstance(error, rule.errors) and rule.applies(error):
            reason = rule.reason if isinstance(rule.reason, str) else rule.reason(error)
            log.debug("%s: %s -> %s (%s)", video_id, type(error).__name__, rule.kind.kind, reason)
            return rule.kind(video_id, reason)
    return None


def _http_status(error: BaseException) -> int | None:
    """The HTTP status behind a `requests.HTTPError` or a `YouTubeRequestFailed` (which keeps only text)."""
    if isinstance(error, requests.HTTPError):
        return error.response.status_code if error.response is not None else None
    if isinstance(error, YouTubeRequestFailed):
        if isinstance(error.__context__, requests.HTTPError):
            return _http_status(error.__context__)
        match = re.match(r"(\d{3}) ", error.reason)
        return int(match.group(1)) if match else None
    return None


def _status_between(low: int, high: int) -> Callable[[BaseException], bool]:
    def applies(error: BaseException) -> bool:
        status = _http_status(error)
        return status is not None and low <= status <= high

    return applies


def _http_reason(error: BaseException) -> str:
    return f"YouTube answered HTTP {_http_status(error)}"


def _is_bot_check(error: BaseException) -> bool:
    """A "Sign in to confirm you're not a bot" the library did not recognise (it wants U+2019 exactly)."""
    reason = error.reason if isinstance(error, VideoUnplayable) else None
    return reason is not None and "not a bot" in reason.replace("\u2019", "'").lower()


def _unplayable_text(error: BaseException) -> str:
    """YouTube's reason and sub-reasons, one line ("Video unavailable. The uploader has not made...")."""
    if not isinstance(error, VideoUnplayable):
        return ""
    parts = (one_line(part).rstrip(".") for part in (error.reason or "", *error.sub_reasons))
    return ". ".join(part for part in parts if part)


def _unplayable_reason(error: BaseException) -> str:
    text = _unplayable_text(error)
    return f"video is unplayable: {text[: _MAX_REASON_LENGTH * 2]}" if text else "video is unplayable"


def _is_geo_block(error: BaseException) -> bool:
    """ "The uploader has not made this video available in your country": the exit's country is the cause."""
    return "available in your country" in _unplayable_text(error).lower()


def _bug_reason(error: BaseException) -> str:
    detail = one_line(str(error), limit=_MAX_REASON_LENGTH)
    where = _raised_in(error)
    return (
        f"a bug, not a network problem: {type(error).__name__}"
        + (f" ({detail})" if detail else "")
        + (f" in {where}" if where else "")
        + f" ({library_versions()}); please report it (--debug shows the traceback)"
    )


def _raised_in(error: BaseException) -> str | None:
    """The module whose code raised `error` (the innermost frame of its traceback)."""
    module = None
    frame = error.__traceback__
    while frame is not None:
        module = frame.tb_frame.f_globals.get("__name__", module)
        frame = frame.tb_next
    return module


@functools.cache
def library_versions() -> str:
    """The versions of the libraries that read YouTube's answers, for a bug report."""
    versions = []
    for name in ("youtube-transcript-api", "yt-dlp"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} not installed")
    return ", ".join(versions)


def _always(_error: BaseException) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class _Rule:
    errors: type[BaseException] | tuple[type[BaseException], ...]
    kind: type[FetchError]
    reason: str | Callable[[BaseException], str]
    applies: Callable[[BaseException], bool] = _always


_HTTP_ERRORS = (YouTubeRequestFailed, requests.HTTPError)
_YTDLP_MAY_GET = (PoTokenRequired, TranscriptsDisabled)  # what yt-dlp's subtitle path may still get
_UNREADABLE = (requests.exceptions.JSONDecodeError, ParseError, ValueError)  # data, not code, is broken
_BUGS = (TypeError, AttributeError, LookupError, NameError, AssertionError)

# First match wins: specific types and conditions before their base classes.
_RULES: tuple[_Rule, ...] = (
    _Rule(IpBlocked, BlockedError, "blocked by YouTube (rate limit or reCAPTCHA)"),
    _Rule(RequestBlocked, BlockedError, "blocked by YouTube (bot check)"),
    _Rule(VideoUnplayable, BlockedError, "blocked by YouTube (bot check)", _is_bot_check),
    _Rule(FailedToCreateConsentCookie, BlockedError, "stuck on YouTube's cookie consent page"),
    _Rule(_HTTP_ERRORS, BlockedError, "rate limited by YouTube (HTTP 429)", _status_between(429, 429)),
    _Rule(_HTTP_ERRORS, BlockedError, "refused by YouTube (HTTP 403)", _status_between(403, 403)),
    _Rule(_HTTP_ERRORS, TransientError, _http_reason, _status_between(500, 599)),
    _Rule(_HTTP_ERRORS, PermanentError, _http_reason, _status_between(400, 499)),
    _Rule(_HTTP_ERRORS, TransientError, "YouTube request failed"),
    _Rule(YouTubeDataUnparsable, TransientError, "YouTube sent a page that could not be read"),
    _Rule(TranscriptsDisabled, PermanentError, "transcripts are disabled"),
    _Rule(NoTranscriptFound, PermanentError, "no transcript in the requested languages"),
    _Rule(VideoUnavailable, PermanentError, "video is unavailable"),
    _Rule(AgeRestricted, PermanentError, "age restricted"),
    _Rule(VideoUnplayable, GeoBlockedError, _unplayable_reason, _is_geo_block),
    _Rule(VideoUnplayable, PermanentError, _unplayable_reason),
    _Rule(InvalidVideoId, PermanentError, "invalid video id"),
    _Rule(NotTranslatable, PermanentError, "transcript cannot be translated"),
    _Rule(TranslationLanguageNotAvailable, PermanentError, "translation to that language is not available"),
    _Rule(PoTokenRequired, PermanentError, "YouTube requires a PO token for this transcript"),
    _Rule(YouTubeTranscriptApiException, PermanentError, "transcript could not be retrieved"),
    _Rule(requests.exceptions.ProxyError, TransientError, "could not connect through the proxy"),
    _Rule(requests.exceptions.SSLError, TransientError, "TLS connection failed"),
    _Rule(requests.Timeout, TransientError, "timed out"),
    _Rule(requests.ConnectionError, TransientError, "connection failed"),
    _Rule(socks.ProxyError, TransientError, "SOCKS proxy error"),
    _Rule(_BUGS, BugError, _bug_reason),
    _Rule(_UNREADABLE, TransientError, "unreadable response from YouTube"),
    _Rule((requests.RequestException, urllib3.exceptions.HTTPError), TransientError, "network error"),
)
