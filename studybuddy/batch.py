"""Notes through the Message Batches API (`--batch`): half the price, slower, and resumable.

The fetch stage runs as usual, but instead of one Messages call per video, each fetched video is saved
(the `.transcripts/` JSON of `formats`, as for `notes regenerate`) and its request deferred. When
fetching ends, the deferred requests go out as one batch (`custom_id` = video id); the archive records
the batch and marks its videos pending *before* any polling starts. Then every open batch in the
archive is polled (every `poll_interval_s`, for at most `max_wait_s`, Ctrl-C safe), and once it has
ended its results are handed back one video at a time with the saved transcript, so the pipeline
writes the notes. A run stopped while a batch is
processing (Ctrl-C, crash, `max_wait_s`) leaves the batch open: the next `--batch` run polls the same
batch again instead of paying for a second one.

A video whose row no longer points at the batch (redone without `--batch` meanwhile) ignores its result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .archive import Archive, ArchiveRow, BatchState
from .errors import NotesError, StudyBuddyError
from .formats import load_saved_transcript, save_transcript_json, saved_transcript_path
from .models import NoteBody, Transcript, VideoMeta
from .output import atomic_write_text
from .transcripts import FetchResult

if TYPE_CHECKING:
    import anthropic
    from anthropic.types.messages import MessageBatchIndividualResponse
    from anthropic.types.messages.batch_create_params import Request

    from .notes import AnthropicEngine

logger = logging.getLogger(__name__)

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
    """Defers note requests, submits them as one Message Batch, and collects the results. Thread-safe."""

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
        self._deferred: dict[str, Request] = {}
        self._lock = threading.Lock()

    @staticmethod
    def is_pending(row: ArchiveRow | None) -> bool:
        """Whether the video waits for a batch's results (so it must not be fetched again)."""
        return row is not None and row.batch_id is not None and row.batch_state == BatchState.PENDING

    def defer(self, meta: VideoMeta, transcript: Transcript) -> bool:
        """Save the fetched video and queue its note request for the next batch.

        False when one request cannot write the note (no speech, or a transcript long enough to need
        sections): the caller writes it at once, at the full price.
        """
        if not self.engine.fits_one_call(meta, transcript):
            return False
        atomic_write_text(
            saved_transcript_path(self.output_root, meta.video_id), save_transcript_json(meta, transcript)
        )
        request: Request = {
            "custom_id": meta.video_id,
            "params": self.engine.message_params(meta, transcript),
        }
        with self._lock:
            self._deferred[meta.video_id] = request
        return True

    def submit(self) -> str | None:
        """Send the deferred requests as one batch and record it; returns its id (None when none waited)."""
        import anthropic

        with self._lock:
            requests, self._deferred = list(self._deferred.values()), {}
        if not requests:
            return None
        video_ids = [request["custom_id"] for request in requests]
        try:
            batch = self.engine.client.messages.batches.create(requests=requests)
        except anthropic.APIError as error:
            raise self.engine.api_error(error, f"batch of {len(requests)} note(s)") from error
        self.archive.record_batch(batch.id, self.engine.model, video_ids)
        logger.info("submitted batch %s with %d note request(s)", batch.id, len(requests))
        return batch.id

    def collect(self, stop: threading.Event, on_outcome: Callable[[BatchOutcome], None]) -> bool:
        """Wait for every open batch of the archive and hand each pending video's result to `on_outcome`.

        Returns False when `stop` was set while waiting (the batches stay open for the next run).
        """
        for batch_id, _model in self.archive.open_batches():
            if not self._wait(batch_id, stop):
                return False
            pending = self.archive.pending_in_batch(batch_id)
            for response in self._results(batch_id):
                if response.custom_id in pending:
                    pending.pop(response.custom_id)
                    on_outcome(self._outcome(batch_id, response.custom_id, self._result(response)))
            for video_id in pending:
                missing = NotesError(f"{video_id}: batch {batch_id} returned no result for this video")
                on_outcome(self._outcome(batch_id, video_id, missing))
            self.archive.close_batch(batch_id)
        return True

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
            logger.info(
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

    def _result(self, response: MessageBatchIndividualResponse) -> NoteBody | NotesError:
        video_id, result = response.custom_id, response.result
        if result.type == "succeeded":
            try:
                return self.engine.note_from_message(result.message, video_id)
            except NotesError as error:
                return error
        if result.type == "errored":
            failure = result.error.error
            return NotesError(f"{video_id}: the batch request failed ({failure.type}: {failure.message})")
        return NotesError(f"{video_id}: the batch request was {result.type} before it was processed")

    def _outcome(self, batch_id: str, video_id: str, result: NoteBody | StudyBuddyError) -> BatchOutcome:
        try:
            meta, transcript = load_saved_transcript(saved_transcript_path(self.output_root, video_id))
        except StudyBuddyError as error:
            return BatchOutcome(video_id, batch_id, error, None)
        return BatchOutcome(video_id, batch_id, result, FetchResult(transcript=transcript, meta=meta))

    @property
    def _client(self) -> anthropic.Anthropic:
        return self.engine.client
