"""The Anthropic note engine: the calls of each note's `NotePlan`, sent one by one through the Messages API.

One `AnthropicEngine` (one SDK client) is shared by every worker thread; its `RequestLimiter` paces the
calls. `check()` makes one call of a single output token with a forced tool before a run spends anything
else, so a refused key, an unknown model or a model without tool use stops the run with one clear line.

Anthropic failures are sorted in two: `NotesFatalError` when no note can ever be written (refused key,
unknown model, a model that cannot use tools), `NotesError` when this video failed (rate limit, overload,
outage after the SDK's own retries, an answer that failed its checks even after a repair). The API key never
appears in a message or a log line.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from studybuddy.errors import ConfigError, NotesError, NotesFatalError
from studybuddy.models import NoteBody, Transcript, VideoMeta
from studybuddy.notes.plan import DEFAULT_MAX_INPUT_TOKENS, NotePlan, NoteSettings
from studybuddy.notes.prompting import probe_params
from studybuddy.notes.ratelimit import RequestLimiter
from studybuddy.text import one_line

if TYPE_CHECKING:
    import anthropic
    from anthropic.types import Message

__all__ = ["AnthropicEngine"]

log = logging.getLogger(__name__)


class AnthropicEngine:
    """Writes notes with the Anthropic Messages API. Thread-safe: share one instance between workers.

    A video costs one note call and one assessment call that reads the cached transcript; a long one a call
    per section, an overview call and the assessment; an answer that fails its checks one repair call more.
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
        notes_lang: str | None = None,
    ) -> None:
        if not api_key:
            raise ConfigError("no Anthropic API key: notes need one (or make a transcript-only run)")
        import anthropic  # slow to import: only when notes are really wanted

        self.settings = NoteSettings(model, max_tokens, assessment, max_input_tokens, notes_lang)
        self.model = model
        self.max_retries = max_retries
        self.timeout = timeout
        self._limiter = limiter
        self._api_key = api_key
        # base_url None lets the SDK read ANTHROPIC_BASE_URL, then fall back to the public API.
        self._client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout
        )

    def __repr__(self) -> str:  # never show the key
        return f"AnthropicEngine(model={self.model!r}, base_url={str(self._client.base_url)!r})"

    @property
    def client(self) -> anthropic.Anthropic:
        """The shared SDK client (the Message Batches API of `--batch` uses it too)."""
        return self._client

    def check(self) -> None:
        """One call of one output token with a forced tool: stop the run early if the key is refused, the
        model does not exist or cannot use tools.

        Any other trouble (network, overload) is only logged: the run goes on and each video reports its own
        failure.
        """
        import anthropic

        try:
            with self._limiter:
                self._client.messages.create(**probe_params(self.model))
        except anthropic.APIStatusError as error:
            fatal = self._fatal_error(error)
            if fatal is None and isinstance(error, anthropic.BadRequestError):
                fatal = NotesFatalError(
                    f"model {self.model!r} cannot write structured notes: Anthropic refused a tool call "
                    f"(400): {self._scrub(error.api_message or error.message)}"
                )
            if fatal is not None:
                raise fatal from error
            log.warning("cannot check model %r: %s", self.model, self._describe(error))
        except anthropic.APIError as error:
            log.warning("cannot check model %r: %s", self.model, self._describe(error))

    def plan(self, meta: VideoMeta, transcript: Transcript, state: dict[str, Any] | None = None) -> NotePlan:
        """The calls that write this video's note (`state`: a plan's saved progress, to go on from)."""
        return NotePlan(self.settings, meta, transcript, state)

    def generate(self, meta: VideoMeta, transcript: Transcript) -> NoteBody:
        """Write the note of one video, call by call (each answer checked, one repair each at most)."""
        plan = self.plan(meta, transcript)
        while keys := plan.pending():
            plan.feed(keys[0], self.send(plan.params(keys[0]), meta.video_id))
        return plan.result()

    def send(self, params: dict[str, Any], subject: str) -> Message:
        """One Messages call about `subject` (a video id), within the shared rate limit."""
        import anthropic

        with self._limiter:
            try:
                message: Message = self._client.messages.create(**params)
            except anthropic.APIError as error:
                raise self.api_error(error, subject) from error
        usage = message.usage
        log.debug(
            "%s: answer by %s (%s), %d input (%s cached) and %d output tokens",
            subject,
            message.model,
            message.stop_reason,
            usage.input_tokens,
            usage.cache_read_input_tokens,
            usage.output_tokens,
        )
        return message

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
        return self._scrub(reason)

    def _scrub(self, text: str) -> str:
        """`text` on one line, without the API key (whatever a server echoes)."""
        return one_line(text).replace(self._api_key, "[key]")
