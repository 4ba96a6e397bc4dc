"""Notes through the Message Batches API (`--batch`): half the price, slower, and resumable.

The fetch stage runs as usual, but each fetched video's note is planned (`NotePlan`: the same calls,
schema, checks and repairs as without `--batch`, assessment and sections included) and its transcript saved
(the `.transcripts/` JSON of `formats`, as for `notes regenerate`). When fetching ends, the first calls of
every plan go out as one batch (`custom_id` = `<video id>-<call>`); the archive records the batch and marks
its videos pending in it, with each note's progress, *before* any polling starts. Then every open batch
in the archive is polled (every `poll_interval_s`, for at most `max_wait_s`, Ctrl-C safe). Once one has
ended, its results go to their plans: what the plans need next (a long video's overview and assessment
after its sections, the repair of an answer that failed its checks) goes out as the next batch, recorded the
same way; a finished note is handed back one video at a time with the saved transcript, so the pipeline
writes it. A run stopped while a batch is processing (Ctrl-C, crash, `max_wait_s`) leaves the batch open:
the next `--batch` run polls the same batch again instead of paying for a second one.

A video whose row no longer points at the batch (redone without `--batch` meanwhile) ignores its result.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from studybuddy.config import Settings
from studybuddy.errors import ConfigError, NotesError, StudyBuddyError
from studybuddy.models import NoteBody, Transcript, VideoMeta
from studybuddy.notes.engine import NoteEngine
from studybuddy.store.archive import Archive
from studybuddy.store.archive_rows import ArchiveRow, BatchState
from studybuddy.store.formats import load_saved_transcript, save_transcript_json, saved_transcript_path
from studybuddy.store.output import atomic_write_text
from studybuddy.youtube.transcripts import FetchResult

if TYPE_CHECKING:
    import anthropic
    from anthropic.types.messages import MessageBatchIndividualResponse
    from anthropic.types.messages.batch_create_params import Request

    from studybuddy.notes.anthropic import AnthropicEngine
    from studybuddy.notes.plan import NotePlan

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL_S = 30.0
DEFAULT_MAX_WAIT_S = 25 * 3600.0  # a batch expires 24 hours after it was created


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """One video's result from a batch: its note body, or the error that stands for it."""

    video_id: str
    batch_id: str
    result: NoteBody | StudyBuddyError
    fetched: FetchResult | None  # the saved transcript and metadata (None when they cannot be read)


class BatchNotes:
    """Defers note plans, submits their calls as Message Batches, and collects the notes. Thread-safe."""

    def __init__(
        self,
        engine: AnthropicEngine,
        archive: Archive,
        output_root: Path,
        *,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        if poll_interval_s <= 0 or max_wait_s <= 0:
            raise ValueError("poll_interval_s and max_wait_s must be positive")
        self.engine = engine
        self.archive = archive
        self.output_root = output_root
        self.poll_interval_s = poll_interval_s
        self.max_wait_s = max_wait_s
        self._deferred: dict[str, NotePlan] = {}
        self._lock = threading.Lock()

    @staticmethod
    def is_pending(row: ArchiveRow | None) -> bool:
        """Whether the video waits for a batch's results (so it must not be fetched again)."""
        return row is not None and row.batch_id is not None and row.batch_state == BatchState.PENDING

    def defer(self, meta: VideoMeta, transcript: Transcript) -> None:
        """Save the fetched video and plan its note for the next batch (NotesError: no note can be written,
        e.g. a transcript without speech)."""
        plan = self.engine.plan(meta, transcript)
        atomic_write_text(
            saved_transcript_path(self.output_root, meta.video_id), save_transcript_json(meta, transcript)
        )
        with self._lock:
            self._deferred[meta.video_id] = plan

    def submit(self) -> str | None:
        """Send the first calls of the deferred plans as one batch; returns its id (None when none waited)."""
        with self._lock:
            plans, self._deferred = self._deferred, {}
        return self._submit(plans)

    def _submit(self, plans: Mapping[str, NotePlan]) -> str | None:
        """One batch with every pending call of `plans`, recorded with the plans' progress."""
        import anthropic

        requests: list[Request] = [
            {"custom_id": f"{video_id}-{key}", "params": plan.params(key)}  # type: ignore[typeddict-item]
            for video_id, plan in plans.items()
            for key in plan.pending()
        ]
        if not requests:
            return None
        try:
            batch = self._client.messages.batches.create(requests=requests)
        except anthropic.APIError as error:
            raise self.engine.api_error(error, f"batch of {len(requests)} note call(s)") from error
        progress = {video_id: json.dumps(plan.state) for video_id, plan in plans.items()}
        self.archive.record_batch(batch.id, self.engine.model, progress)
        log.info("submitted batch %s: %d call(s) for %d note(s)", batch.id, len(requests), len(plans))
        return batch.id

    def collect(self, stop: threading.Event, on_outcome: Callable[[BatchOutcome], None]) -> bool:
        """Wait for every open batch of the archive, send what the notes need next, and hand each finished
        video's note to `on_outcome`, until no batch is open.

        Returns False when `stop` was set while waiting (the batches stay open for the next run).
        """
        while batches := self.archive.open_batches():
            for batch_id, _model in batches:
                if not self._wait(batch_id, stop):
                    return False
                self._collect(batch_id, on_outcome)
        return True

    def _collect(self, batch_id: str, on_outcome: Callable[[BatchOutcome], None]) -> None:
        """Feed an ended batch's results to the plans waiting for it; send what they need next."""
        pending = self.archive.pending_in_batch(batch_id)
        saved = self.archive.batch_plans(batch_id)
        plans: dict[str, NotePlan] = {}
        for video_id in pending:
            restored = self._restore(video_id, saved.get(video_id))
            if isinstance(restored, StudyBuddyError):
                on_outcome(BatchOutcome(video_id, batch_id, restored, None))
            else:
                plans[video_id] = restored
        awaited = {video_id: set(plan.pending()) for video_id, plan in plans.items()}
        for response in self._results(batch_id):
            owners = [vid for vid in plans if response.custom_id.startswith(f"{vid}-")]
            if not owners:
                continue  # a video redone without --batch meanwhile
            owner = max(owners, key=len)
            key = response.custom_id[len(owner) + 1 :]
            awaited[owner].discard(key)
            self._feed(plans[owner], key, response)
        for video_id, keys in awaited.items():
            if keys:
                plans[video_id].fail(
                    f"{video_id}: batch {batch_id} returned no result for {', '.join(sorted(keys))}"
                )
        ongoing = {video_id: plan for video_id, plan in plans.items() if plan.pending()}
        self._submit(ongoing)
        for video_id, plan in plans.items():
            if video_id not in ongoing:
                fetched = FetchResult(transcript=plan.transcript, meta=plan.meta)
                on_outcome(BatchOutcome(video_id, batch_id, self._result(plan), fetched))
        self.archive.close_batch(batch_id)

    def _restore(self, video_id: str, state: str | None) -> NotePlan | StudyBuddyError:
        if state is None:
            return NotesError(f"{video_id}: no saved progress for this note's batch (run again to redo it)")
        try:
            meta, transcript = load_saved_transcript(saved_transcript_path(self.output_root, video_id))
            return self.engine.plan(meta, transcript, json.loads(state))
        except (StudyBuddyError, ValueError) as error:
            return error if isinstance(error, StudyBuddyError) else NotesError(f"{video_id}: {error}")

    @staticmethod
    def _feed(plan: NotePlan, key: str, response: MessageBatchIndividualResponse) -> None:
        video_id, outcome = plan.meta.video_id, response.result
        if outcome.type == "succeeded":
            plan.feed(key, outcome.message)
        elif outcome.type == "errored":
            failure = outcome.error.error
            plan.fail(f"{video_id}: the batch request failed ({failure.type}: {failure.message})")
        else:
            plan.fail(f"{video_id}: the batch request was {outcome.type} before it was processed")

    @staticmethod
    def _result(plan: NotePlan) -> NoteBody | StudyBuddyError:
        try:
            return plan.result()
        except NotesError as error:
            return error

    def _wait(self, batch_id: str, stop: threading.Event) -> bool:
        """Poll until the batch has ended; False if `stop` is set first. Bounded by `max_wait_s`."""
        import anthropic

        deadline = time.monotonic() + self.max_wait_s
        while True:
            try:
                batch = self._client.messages.batches.retrieve(batch_id)
            except anthropic.APIError as error:
                raise self.engine.api_error(error, f"batch {batch_id}") from error
            if batch.processing_status == "ended":
                return True
            counts = batch.request_counts
            log.info(
                "batch %s: %s, %d request(s) processing", batch_id, batch.processing_status, counts.processing
            )
            if time.monotonic() + self.poll_interval_s > deadline:
                raise NotesError(
                    f"batch {batch_id} still processing after {self.max_wait_s:g}s: "
                    "run again with --batch to keep waiting for it"
                )
            if stop.wait(self.poll_interval_s):
                return False

    def _results(self, batch_id: str) -> list[MessageBatchIndividualResponse]:
        """Every result line of an ended batch (read whole, so a broken stream changes nothing)."""
        import anthropic

        try:
            decoder = self._client.messages.batches.results(batch_id)
            try:
                return list(decoder)
            finally:
                decoder.close()
        except anthropic.AnthropicError as error:
            if isinstance(error, anthropic.APIError):
                raise self.engine.api_error(error, f"batch {batch_id}") from error
            raise NotesError(f"batch {batch_id}: cannot read its results ({error})") from error

    @property
    def _client(self) -> anthropic.Anthropic:
        return self.engine.client


def batch_for(settings: Settings, engine: NoteEngine | None, archive: Archive) -> BatchNotes | None:
    """With --batch, the Message Batches side of the Anthropic engine."""
    if not settings.batch:
        return None
    from studybuddy.notes.anthropic import AnthropicEngine

    if not isinstance(engine, AnthropicEngine):
        raise ConfigError("--batch needs the Anthropic engine (notes on, ANTHROPIC_API_KEY set)")
    return BatchNotes(
        engine,
        archive,
        archive.root,
        poll_interval_s=settings.batch_poll_s,
        max_wait_s=settings.batch_max_wait_s,
    )
