"""Study notes: the engine protocol, the Anthropic engine, its prompt and the Markdown rendering.

An engine turns a `Transcript` (plus its `VideoMeta`) into a `NoteBody`: Markdown sections without front
matter. `render_note` wraps a body (or, for transcript-only runs, nothing) in YAML front matter, a title and a
link line. One `AnthropicEngine` (one SDK client) is shared by every worker thread; its `RequestLimiter`
paces the calls. The prompts are files in `prompts/` (their hash is `PROMPT_VERSION`): one system prompt
shared by every call, then per call the material (transcript, or section notes of a long video, cached when
an assessment call follows) and a task (note, section notes, combine, assessment).

Anthropic failures are sorted in two: `NotesFatalError` when no note can ever be written (refused key,
unknown model), `NotesError` when this video failed (rate limit, overload, outage after the SDK's own
retries, a cut-off or refused answer). The API key never appears in a message or a log line.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import yaml

from .chunking import estimate_tokens, halve, split_sections
from .errors import ConfigError, NotesError, NotesFatalError
from .models import NoteBody, Transcript, Usage, VideoMeta
from .ratelimit import RequestLimiter

if TYPE_CHECKING:
    import anthropic
    from anthropic.types import Message
    from anthropic.types.message_create_params import MessageCreateParamsNonStreaming

__all__ = [
    "PROMPT_VERSION",
    "SYSTEM_PROMPT",
    "AnthropicEngine",
    "NoteEngine",
    "RequestLimiter",
    "build_material",
    "build_messages",
    "format_clock",
    "has_speech",
    "render_note",
    "render_transcript",
    "timestamp_link",
    "video_fields",
]

logger = logging.getLogger(__name__)


def _prompt(name: str) -> str:
    return resources.files(__package__).joinpath(f"prompts/{name}.md").read_text(encoding="utf-8")


SYSTEM_PROMPT = _prompt("system")
"""The role and rules shared by every call: identical in the note and assessment calls, so it is cached."""
NOTE_TASK = _prompt("notes")
SECTION_TASK = _prompt("section")
COMBINE_TASK = _prompt("combine")
ASSESSMENT_TASK = _prompt("assessment")
_ALL_PROMPTS = "\0".join((SYSTEM_PROMPT, NOTE_TASK, SECTION_TASK, COMBINE_TASK, ASSESSMENT_TASK))
PROMPT_VERSION = "notes-" + hashlib.sha256(_ALL_PROMPTS.encode("utf-8")).hexdigest()[:12]
"""Changes whenever a prompt file does, so a note (and the archive) records which prompts wrote it."""
DEFAULT_MAX_INPUT_TOKENS = 60_000
"""Estimated tokens (`chunking.estimate_tokens`) one call may send; a longer transcript goes in sections."""

_ACCEPTED_STOP_REASONS = frozenset({"end_turn", "stop_sequence"})
_YAML_LINE_WIDTH = 1 << 16  # never fold a long title over several lines
_LINE_BREAKS = frozenset("\n\r\x85\u2028\u2029")
_SOUND_TAGS = re.compile(r"\[[^\]]*\]|[♪♫]")  # [Music], [Applause], ♪: captions of sounds, not words
_SPEECH = re.compile(r"\w")


class _FrontMatterDumper(yaml.SafeDumper):
    """A safe dumper whose strings read back as written and stay on one line.

    With `allow_unicode`, PyYAML writes NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR raw in plain and
    single-quoted scalars, where a reader folds them into spaces; and a multi-line scalar could hold a
    `---` line that ends the front matter early for other readers. Double quotes escape every break.
    """


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if _LINE_BREAKS.intersection(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_FrontMatterDumper.add_representer(str, _represent_str)


class NoteEngine(Protocol):
    """Something that writes the Markdown body of a note from a transcript."""

    name: str

    def check(self) -> None:
        """Fail fast (NotesFatalError) when the engine cannot work at all, before any video runs."""

    def generate(self, meta: VideoMeta, transcript: Transcript) -> NoteBody: ...

    def close(self) -> None: ...


def format_clock(seconds: float) -> str:
    """`mm:ss`, or `h:mm:ss` from one hour on (whole seconds, never negative)."""
    hours, rest = divmod(max(int(seconds), 0), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def timestamp_link(video_id: str, seconds: float) -> str:
    """The short link that opens `video_id` at `seconds` (rounded down to a whole second)."""
    return f"https://youtu.be/{video_id}?t={max(int(seconds), 0)}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _transcript_lines(transcript: Transcript) -> list[tuple[float, str]]:
    """(start, text) of every caption that has text, whitespace collapsed."""
    lines = [(segment.start, _one_line(segment.text)) for segment in transcript.segments]
    return [(start, text) for start, text in lines if text]


def has_speech(transcript: Transcript) -> bool:
    """Whether any caption says something besides sound tags like `[Music]` or `♪`."""
    return any(_SPEECH.search(_SOUND_TAGS.sub("", segment.text)) for segment in transcript.segments)


def _video_block(meta: VideoMeta, transcript: Transcript) -> str:
    video = [f"title: {_one_line(meta.display_title)}", f"video_id: {meta.video_id}"]
    if meta.channel:
        video.append(f"channel: {_one_line(meta.channel)}")
    duration = meta.duration if meta.duration is not None else transcript.end
    video.append(f"duration: {format_clock(duration)}")
    if meta.chapters:
        video.append("chapters:")
        video.extend(f"[{int(chapter.start)}s] {_one_line(chapter.title)}" for chapter in meta.chapters)
    return "<video>\n" + "\n".join(video) + "\n</video>"


def _time_range(section: Transcript) -> str:
    start = min((segment.start for segment in section.segments), default=0.0)
    return f'from="{int(start)}s" to="{int(section.end)}s"'


def build_material(meta: VideoMeta, transcript: Transcript, *, section: bool = False) -> str:
    """The video's context, then its transcript as `[SECONDSs] text` lines (a section with its range)."""
    kind = "automatic" if transcript.is_generated else "manual"
    attributes = f'language="{transcript.language}" captions="{kind}"'
    if section:
        attributes += " " + _time_range(transcript)
    captions = "\n".join(f"[{int(start)}s] {text}" for start, text in _transcript_lines(transcript))
    return f"{_video_block(meta, transcript)}\n\n<transcript {attributes}>\n{captions}\n</transcript>"


def build_digest(meta: VideoMeta, transcript: Transcript, notes: Sequence[tuple[Transcript, str]]) -> str:
    """The video's context, then the notes on each of its sections with their time ranges, in order."""
    sections = "\n".join(
        f"<section {_time_range(section)}>\n{text.strip()}\n</section>" for section, text in notes
    )
    return f"{_video_block(meta, transcript)}\n\n<section_notes>\n{sections}\n</section_notes>"


def build_messages(material: str, task: str, *, cache: bool) -> list[dict[str, Any]]:
    """The user turn: the material (marked for prompt caching when `cache`), then the task.

    The note and assessment calls send the same system prompt and material block, so the second call reads
    the cached prefix instead of paying for the transcript again.
    """
    block: dict[str, Any] = {"type": "text", "text": material}
    if cache:
        block["cache_control"] = {"type": "ephemeral"}
    return [{"role": "user", "content": [block, {"type": "text", "text": task}]}]


@dataclass(frozen=True, slots=True)
class _Reply:
    text: str
    model: str
    usage: Usage


class _CutOff(NotesError):
    """The answer stopped at max_tokens."""


def _total(usages: Sequence[Usage]) -> Usage:
    return Usage(
        input_tokens=sum(usage.input_tokens for usage in usages),
        output_tokens=sum(usage.output_tokens for usage in usages),
        cache_read_tokens=sum(usage.cache_read_tokens for usage in usages),
        cache_write_tokens=sum(usage.cache_write_tokens for usage in usages),
    )


class AnthropicEngine:
    """Writes notes with the Anthropic Messages API. Thread-safe: share one instance between workers.

    One video costs one note call (plus one assessment call that reads the cached transcript), or, above
    `max_input_tokens`, one call per section, a combining call and the assessment call.
    """

    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        limiter: RequestLimiter,
        max_tokens: int = 8000,
        max_retries: int = 4,
        base_url: str | None = None,
        timeout: float = 300,
        assessment: bool = True,
        max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS,
    ) -> None:
        if not api_key:
            raise ConfigError("no Anthropic API key: notes need one (or make a transcript-only run)")
        import anthropic  # slow to import: only when notes are really wanted

        self.model = model
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self.timeout = timeout
        self.assessment = assessment
        self.max_input_tokens = max_input_tokens
        self._limiter = limiter
        self._api_key = api_key
        # base_url None lets the SDK read ANTHROPIC_BASE_URL, then fall back to the public API.
        self._client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout
        )

    def __repr__(self) -> str:  # never show the key
        return f"AnthropicEngine(model={self.model!r}, base_url={str(self._client.base_url)!r})"

    def check(self) -> None:
        """A free first call: stop the run early if the key is refused or the model does not exist.

        Any other trouble (network, overload, a proxy without the models endpoint) is only logged:
        the run goes on and each video reports its own failure.
        """
        import anthropic

        try:
            self._client.models.retrieve(self.model)
        except anthropic.APIStatusError as error:
            fatal = self._fatal_error(error)
            # A 404 without an API error body comes from a proxy that lacks /v1/models, not from the API.
            endpoint_missing = isinstance(error, anthropic.NotFoundError) and error.type is None
            if fatal is not None and not endpoint_missing:
                raise fatal from error
            logger.warning("cannot check model %r: %s", self.model, self._describe(error))
        except anthropic.APIError as error:
            logger.warning("cannot check model %r: %s", self.model, self._describe(error))

    @property
    def client(self) -> anthropic.Anthropic:
        """The shared SDK client (the Message Batches API of `--batch` uses it too)."""
        return self._client

    def request_params(self, material: str, task: str, *, cache: bool) -> MessageCreateParamsNonStreaming:
        """One Messages request: the shared system prompt, the material (cached when `cache`), the task."""
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": SYSTEM_PROMPT,
            "messages": build_messages(material, task, cache=cache),  # type: ignore[typeddict-item]
        }

    def message_params(self, meta: VideoMeta, transcript: Transcript) -> MessageCreateParamsNonStreaming:
        """The request that writes the note of one video in one call (sent alone, or in a batch)."""
        return self.request_params(build_material(meta, transcript), NOTE_TASK, cache=False)

    def fits_one_call(self, meta: VideoMeta, transcript: Transcript) -> bool:
        """Whether `message_params` alone can write this note: there is speech, and it fits the budget."""
        return has_speech(transcript) and self._fits(build_material(meta, transcript))

    def _fits(self, material: str) -> bool:
        return estimate_tokens(SYSTEM_PROMPT + material + NOTE_TASK) <= self.max_input_tokens

    def generate(self, meta: VideoMeta, transcript: Transcript) -> NoteBody:
        """Ask the model for the note body of one video (and its assessment)."""
        video_id = meta.video_id
        if not has_speech(transcript):
            raise NotesError(f"{video_id}: the transcript has no spoken words (empty, or only [Music])")
        replies: list[_Reply] = []
        material = build_material(meta, transcript)
        task = NOTE_TASK
        if not self._fits(material):
            material = build_digest(meta, transcript, self._section_notes(meta, transcript, replies))
            task = COMBINE_TASK
        parts = [self._ask(video_id, material, task, replies, cache=self.assessment)]
        if self.assessment:
            parts.append(self._ask(video_id, material, ASSESSMENT_TASK, replies, cache=True))
        return NoteBody(
            markdown="\n\n".join(parts),
            model=replies[-1].model,
            usage=_total([reply.usage for reply in replies]),
            prompt_version=PROMPT_VERSION,
        )

    def _section_notes(
        self, meta: VideoMeta, transcript: Transcript, replies: list[_Reply]
    ) -> list[tuple[Transcript, str]]:
        """Map: notes on each section of a long transcript, in time order."""
        overhead = estimate_tokens(SYSTEM_PROMPT + SECTION_TASK + _video_block(meta, transcript)) + 50
        budget = max(self.max_input_tokens - overhead, self.max_input_tokens // 4)
        sections = split_sections(transcript, budget)
        logger.info("%s: long transcript, written in %d sections", meta.video_id, len(sections))
        notes: list[tuple[Transcript, str]] = []
        for section in sections:
            notes += self._notes_on(meta, section, replies, may_split=True)
        return notes

    def _notes_on(
        self, meta: VideoMeta, section: Transcript, replies: list[_Reply], *, may_split: bool
    ) -> list[tuple[Transcript, str]]:
        """Notes on one section; cut off at max_tokens, the section is retried once in smaller pieces."""
        material = build_material(meta, section, section=True)
        try:
            return [(section, self._ask(meta.video_id, material, SECTION_TASK, replies, cache=False))]
        except _CutOff as error:
            pieces = halve(section)
            span = f"{format_clock(section.segments[0].start)}-{format_clock(section.end)}"
            if not may_split or len(pieces) < 2:
                raise NotesError(
                    f"{meta.video_id}: the notes on {span} were cut off at max_tokens ({self.max_tokens})"
                    " even in a smaller section"
                ) from error
            logger.info("%s: notes on %s cut off; retrying in %d pieces", meta.video_id, span, len(pieces))
            return [
                note for piece in pieces for note in self._notes_on(meta, piece, replies, may_split=False)
            ]

    def _ask(self, video_id: str, material: str, task: str, replies: list[_Reply], *, cache: bool) -> str:
        """One Messages call; its reply is added to `replies` and its text returned."""
        import anthropic

        with self._limiter:
            try:
                message = self._client.messages.create(**self.request_params(material, task, cache=cache))
            except anthropic.APIError as error:
                raise self.api_error(error, video_id) from error
        reply = self._reply(message, video_id)
        replies.append(reply)
        return reply.text

    def api_error(self, error: anthropic.APIError, subject: str) -> NotesError:
        """The error to raise for a failed call about `subject` (a video id): fatal ones stop the run."""
        import anthropic

        if isinstance(error, anthropic.APIStatusError) and (fatal := self._fatal_error(error)) is not None:
            return fatal
        return NotesError(f"{subject}: {self._describe(error)}")

    def close(self) -> None:
        """Close the SDK's connection pool."""
        self._client.close()

    def _fatal_error(self, error: anthropic.APIStatusError) -> NotesFatalError | None:
        """The error that must stop the whole run, or None when only this call failed."""
        import anthropic

        if isinstance(error, anthropic.AuthenticationError):
            return NotesFatalError("Anthropic refused the API key (401): check the key")
        if isinstance(error, anthropic.PermissionDeniedError):
            return NotesFatalError(f"Anthropic denied this API key access to model {self.model!r} (403)")
        if isinstance(error, anthropic.NotFoundError):
            return NotesFatalError(f"model {self.model!r} does not exist (Anthropic answered 404)")
        if isinstance(error, anthropic.PaymentRequiredError):
            return NotesFatalError("Anthropic asks for payment (402): check the account's billing")
        return None

    def _describe(self, error: anthropic.APIError) -> str:
        """One line saying what went wrong, with the API key scrubbed from anything the server said."""
        import anthropic

        retried = f"after {self.max_retries} retries"
        if isinstance(error, anthropic.APITimeoutError):
            reason = f"Anthropic did not answer within {self.timeout:g}s ({retried})"
        elif isinstance(error, anthropic.APIConnectionError):
            reason = f"cannot reach the Anthropic API at {self._client.base_url} ({retried})"
        elif isinstance(error, anthropic.RateLimitError):
            reason = f"Anthropic rate limit (429) still hit {retried}"
        elif isinstance(error, anthropic.OverloadedError):
            reason = f"Anthropic is overloaded (529) {retried}"
        elif isinstance(error, anthropic.InternalServerError):
            reason = f"Anthropic server error {error.status_code} {retried}"
        elif isinstance(error, anthropic.APIStatusError):
            reason = (
                f"Anthropic refused the request ({error.status_code}): {error.api_message or error.message}"
            )
        else:
            reason = f"unexpected answer from Anthropic: {error.message}"
        return _one_line(reason).replace(self._api_key, "[key]")

    def note_from_message(self, message: Message, video_id: str) -> NoteBody:
        """The note body in the model's answer; a cut-off, refused or empty answer is a NotesError."""
        reply = self._reply(message, video_id)
        return NoteBody(reply.text, reply.model, reply.usage, prompt_version=PROMPT_VERSION)

    def _reply(self, message: Message, video_id: str) -> _Reply:
        from anthropic.types import TextBlock

        stop = message.stop_reason
        if stop == "max_tokens":
            raise _CutOff(f"{video_id}: note cut off at max_tokens ({self.max_tokens})")
        if stop == "refusal":
            raise NotesError(f"{video_id}: the model refused to write this note")
        if stop == "model_context_window_exceeded":
            raise NotesError(f"{video_id}: the transcript does not fit the model's context window")
        if stop not in _ACCEPTED_STOP_REASONS:
            raise NotesError(f"{video_id}: unexpected stop reason {stop!r} from the model")
        markdown = "".join(block.text for block in message.content if isinstance(block, TextBlock)).strip()
        if not markdown:
            raise NotesError(f"{video_id}: the model returned an empty note")
        usage = message.usage
        logger.debug(
            "%s: answer by %s, %d input (%s cached) and %d output tokens",
            video_id,
            message.model,
            usage.input_tokens,
            usage.cache_read_input_tokens,
            usage.output_tokens,
        )
        return _Reply(
            markdown,
            message.model,
            Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_input_tokens or 0,
                cache_write_tokens=usage.cache_creation_input_tokens or 0,
            ),
        )


def video_fields(meta: VideoMeta, transcript: Transcript) -> dict[str, Any]:
    """What a note records about its video (front matter, or the `meta` of a JSON note)."""
    return {
        "title": meta.display_title,
        "video_id": meta.video_id,
        "url": meta.url,
        "channel": meta.channel,
        "duration": round(meta.duration) if meta.duration is not None else None,
        "upload_date": meta.upload_date,
        "language": transcript.language_code,
    }


def _front_matter(
    meta: VideoMeta,
    transcript: Transcript,
    body: NoteBody | None,
    *,
    tags: Sequence[str],
    prompt_version: str | None,
    generated_at: datetime,
    subject: str | None = None,
) -> str:
    fields: dict[str, Any] = {
        **video_fields(meta, transcript),
        "tags": list(tags),
        "model": body.model if body else None,
        "prompt_version": prompt_version,
        "generated_at": generated_at.isoformat(timespec="seconds"),
    }
    if subject:
        fields["subject"] = subject
    dumped = yaml.dump(
        fields, Dumper=_FrontMatterDumper, sort_keys=False, allow_unicode=True, width=_YAML_LINE_WIDTH
    )
    return f"---\n{dumped}---\n"


def _link_line(meta: VideoMeta, transcript: Transcript, transcript_link: str | None = None) -> str:
    captions = "automatic captions" if transcript.is_generated else "captions"
    language = f"{transcript.language} {captions}"
    if transcript.translated_from:
        language += f" translated from {transcript.translated_from}"
    if transcript.fallback_reason:
        language += f" ({_one_line(transcript.fallback_reason)})"
    parts = [f"[Watch on YouTube]({meta.url})", _one_line(meta.channel or ""), language]
    if meta.duration is not None:
        parts.append(format_clock(meta.duration))
    if meta.upload_date:
        parts.append(meta.upload_date)
    if transcript_link:
        parts.append(f"[Transcript]({transcript_link})")
    return " · ".join(part for part in parts if part)


def _caption_lines(meta: VideoMeta, transcript: Transcript) -> str:
    return "\n".join(
        f"- [{format_clock(start)}]({timestamp_link(meta.video_id, start)}) {text}"
        for start, text in _transcript_lines(transcript)
    )


def render_note(
    meta: VideoMeta,
    transcript: Transcript,
    body: NoteBody | None,
    *,
    tags: Sequence[str] = (),
    prompt_version: str | None = None,
    transcript_path: str | PurePath | None = None,
    generated_at: datetime | None = None,
    subject: str | None = None,
) -> str:
    """The whole note file: YAML front matter, `# Title`, a link line, then the body.

    `transcript_path` is the transcript file written beside the note: the link line points to it by
    name. With `body=None` (a transcript-only run) the note refers to that file, or, without one, carries
    the timestamped transcript itself.
    """
    when = generated_at or datetime.now(UTC)
    transcript_link = quote(PurePath(transcript_path).name) if transcript_path is not None else None
    if body is not None:
        content = body.markdown.strip()
    elif transcript_link is not None:
        content = f"No notes were written for this video: [read the transcript]({transcript_link})."
    else:
        content = "No notes were written for this video.\n\n## Transcript\n\n" + _caption_lines(
            meta, transcript
        )
    front_matter = _front_matter(
        meta, transcript, body, tags=tags, prompt_version=prompt_version, generated_at=when, subject=subject
    )
    link_line = _link_line(meta, transcript, transcript_link)
    return f"{front_matter}\n# {_one_line(meta.display_title)}\n\n{link_line}\n\n{content}\n"


def render_transcript(meta: VideoMeta, transcript: Transcript) -> str:
    """The transcript as Markdown: one `[mm:ss](https://youtu.be/ID?t=S) text` line per caption."""
    return (
        f"# {_one_line(meta.display_title)}: transcript\n\n"
        f"{_link_line(meta, transcript)}\n\n{_caption_lines(meta, transcript)}\n"
    )
