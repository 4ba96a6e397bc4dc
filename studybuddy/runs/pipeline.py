"""The pipeline: a `ThreadPoolExecutor` whose worker factory gives every thread its own `Worker` (see
`run.workers`). Threads share only thread-safe services: the archive, the output tree, the note engine (with
its global rate limit), the progress monitor and the `Pacer` (per-exit pacing, circuit renewal).

For each video: pace -> fetch (retry transient errors with backoff, renew the circuit on a block) -> notes ->
write atomically -> record in the archive. A video is done only when its note is in place *and* its row says
so; a crash anywhere leaves the old state or the new one, and a rerun finishes the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from studybuddy.config import Settings
from studybuddy.egress.sessions import new_run_id
from studybuddy.errors import (
    ArchiveError,
    BlockedError,
    DiskFullError,
    FetchError,
    GeoBlockedError,
    NotesError,
    NotesFatalError,
    OutputError,
    PermanentError,
    StudyBuddyError,
    TorError,
    TransientError,
    error_kind,
)
from studybuddy.models import NoteBody
from studybuddy.notes.batch import BatchNotes, BatchOutcome, batch_for
from studybuddy.notes.engine import NoteEngine
from studybuddy.runs.admission import ALREADY_DONE, Admission, ClaimKeeper, Lookup, RetrySchedule
from studybuddy.runs.progress import ProgressMonitor
from studybuddy.runs.progress_records import Outcome, Stage, Summary
from studybuddy.runs.workers import Pacer, RenewingPacer, RetryPolicy, RunStopped, Worker, WorkerFactory
from studybuddy.store.archive import Archive
from studybuddy.store.archive_rows import ArchiveRow
from studybuddy.store.notewriter import NoteWriter
from studybuddy.youtube.transcripts import FetchResult

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Attempt:
    """One video's try in this run: what a failure record needs."""

    video_id: str
    title: str | None
    started: float


class Pipeline:
    """Runs videos through fetch -> notes -> write -> archive, sequentially or on a thread pool."""

    def __init__(
        self,
        settings: Settings,
        *,
        archive: Archive,
        writer: NoteWriter,
        engine: NoteEngine | None,
        monitor: ProgressMonitor,
        worker_factory: Callable[[], Worker],
        pacer: Pacer | None = None,
        batch: BatchNotes | None = None,
        admission: Admission | None = None,
        stop_event: threading.Event | None = None,
        run_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.admission = admission or Admission(force=settings.force)
        self.schedule = RetrySchedule(base_s=settings.retry_backoff_s, max_attempts=settings.max_attempts)
        self.claims = ClaimKeeper(archive, ttl_s=settings.claim_ttl_s, run_id=run_id or new_run_id())
        self.batch = batch  # --batch: notes through the Message Batches API, after the fetch stage
        self.archive = archive
        self.writer = writer
        self.engine = engine
        self.monitor = monitor
        self.worker_factory = worker_factory
        self.pacer = pacer or RenewingPacer()
        self.retry = RetryPolicy.for_settings(settings)
        self.stop_event = stop_event or threading.Event()  # set: finish the videos in progress, start none
        self.hurry = threading.Event()  # set (a second Ctrl-C): also start no notes call for a fetched video
        self.fatal: StudyBuddyError | None = None
        self.started = False  # True once videos are being processed
        self._local = threading.local()
        self._workers: list[Worker] = []
        self._workers_lock = threading.Lock()
        self._unavailable: dict[str, str] = {}  # see run()
        self._busy = 0  # workers inside _process (see _shut_down)
        self._busy_changed = threading.Condition()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        archive: Archive,
        *,
        engine: NoteEngine | None = None,
        monitor: ProgressMonitor | None = None,
        worker_factory: Callable[[], Worker] | None = None,
        pacer: Pacer | None = None,
        writer: NoteWriter | None = None,
        admission: Admission | None = None,
        stop_event: threading.Event | None = None,
        run_id: str | None = None,
    ) -> Pipeline:
        """The pipeline of a run of `settings`: its note writer (tree, links, subjects), workers (direct,
        unless `worker_factory` puts them on Tor or proxies), retries and `--batch` all follow `settings`.
        The runner builds its pipeline here, and so do the tests and benchmarks, passing what they replace."""
        run_id = run_id or new_run_id()
        return cls(
            settings,
            archive=archive,
            writer=writer or NoteWriter.for_settings(settings),
            engine=engine,
            monitor=monitor or ProgressMonitor(),
            worker_factory=worker_factory or WorkerFactory(settings, proxy=None, run_id=run_id),
            pacer=pacer,
            batch=batch_for(settings, engine, archive),
            admission=admission,
            stop_event=stop_event,
            run_id=run_id,
        )

    # -- running -------------------------------------------------------------------------------------

    def run(self, video_ids: Sequence[str], *, unavailable: Mapping[str, str] | None = None) -> Summary:
        """Process the videos; returns the summary. Ctrl-C stops cleanly (rerun to finish).

        `unavailable` holds the videos a playlist lists as private or deleted (id -> reason): each is
        recorded as a permanent failure with that reason, without asking YouTube."""
        self._unavailable = dict(unavailable or {})
        found = self.admission.look_up(self.archive, video_ids)
        self.monitor.start(video_ids, self.settings.thread_count)
        todo = [vid for vid in video_ids if self._admit(vid, found)]
        self.started = True
        try:
            with self.claims:
                self._run_pool(todo, found.rows)
                self._collect_batches()
        finally:
            self.stop_event.set()
            self._close_workers()
        if self.fatal is not None:
            raise self.fatal
        return self.monitor.summary()

    def _admit(self, video_id: str, found: Lookup) -> bool:
        if video_id in found.done:
            self.monitor.finish(Outcome(video_id, Stage.SKIPPED, found.done[video_id], reason=ALREADY_DONE))
            return False
        row = found.rows.get(video_id)
        if self.batch is not None and self.batch.is_pending(row):
            self.monitor.stage(video_id, Stage.NOTES)  # its note comes with an earlier run's batch
            return False
        reason = self.admission.skip_reason(row, time.time())
        if reason is None:
            return True
        self._skip(video_id, row, reason)
        return False

    def _skip(self, video_id: str, row: ArchiveRow | None, reason: str) -> None:
        if row is None:
            self.monitor.finish(Outcome(video_id, Stage.SKIPPED, reason=reason))
            return
        self.monitor.finish(
            Outcome(video_id, Stage.SKIPPED, row.title, row.error_kind, reason, row.note_path)
        )

    def _run_pool(self, todo: Sequence[str], rows: dict[str, ArchiveRow]) -> None:
        threads = self.settings.thread_count
        capacity = threads * 2  # videos in flight at once: memory stays flat for long lists
        in_flight = threading.BoundedSemaphore(capacity)
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="study-buddy")
        try:
            for video_id in todo:
                if not self._acquire(in_flight):
                    break
                future = pool.submit(self._process, video_id, rows.get(video_id))
                future.add_done_callback(lambda f: self._done(f, in_flight))
            for _ in range(capacity):  # every permit back = every video finished
                self._acquire(in_flight)
        except BaseException:  # Ctrl-C (or a bug): workers finish the video they are on, then stop
            self.stop_event.set()
            raise
        finally:
            self._shut_down(pool)

    def _shut_down(self, pool: ThreadPoolExecutor) -> None:
        """Cancel the videos not started and wait for every video in progress: its worker writes notes and
        archive rows, so the archive must stay open until it is done. Ctrl-C meanwhile does not cut the
        wait short; it hurries the workers instead (`hurry`): a video fetched from then on gets no notes.

        The wait counts the workers inside `_process` rather than joining threads: a `Thread.join` that
        Ctrl-C interrupts may mark a running thread stopped (bpo-45274), and the next join would not wait.
        Only worker threads change that count, and Ctrl-C never reaches them."""
        pool.shutdown(wait=False, cancel_futures=True)
        while True:
            try:
                self._wait_for_workers()
                pool.shutdown(wait=True)  # the workers are idle now: only their threads end
                return
            except KeyboardInterrupt:
                self.stop_event.set()
                if not self.hurry.is_set():
                    self.hurry.set()
                    log.warning(
                        "interrupted again: no more notes are started; waiting for the notes already being "
                        "written, so that the archive records every note file"
                    )

    def _wait_for_workers(self) -> None:
        """Return once no worker is inside `_process`. Wakes up now and then: a signal that reached another
        thread runs its handler (Ctrl-C) only in this one, the main thread."""
        with self._busy_changed:
            while not self._busy_changed.wait_for(lambda: self._busy == 0, timeout=0.2):
                continue

    def _acquire(self, semaphore: threading.BoundedSemaphore) -> bool:
        """Wait for a permit, but give up when the run is stopping (fatal error or Ctrl-C)."""
        while not semaphore.acquire(timeout=0.2):
            if self.stop_event.is_set():
                return False
        return not self.stop_event.is_set()

    def _done(self, future: Future[None], in_flight: threading.BoundedSemaphore) -> None:
        in_flight.release()
        if not future.cancelled() and (exc := future.exception()) is not None:
            log.error("worker crashed: %s", exc, exc_info=exc)  # a bug: stop rather than go on half-blind
            self._stop_run(StudyBuddyError(f"unexpected error in a worker: {exc!r} (--debug shows where)"))

    def _worker(self) -> Worker:
        worker: Worker | None = getattr(self._local, "worker", None)
        if worker is None:
            worker = self.worker_factory()
            self._local.worker = worker
            with self._workers_lock:
                self._workers.append(worker)
        return worker

    def _close_workers(self) -> None:
        with self._workers_lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()

    # -- one video -----------------------------------------------------------------------------------

    def _process(self, video_id: str, row: ArchiveRow | None) -> None:
        """One video on a worker thread, counted while it runs (the run waits for it before it closes)."""
        with self._busy_changed:
            self._busy += 1
        try:
            if not self.stop_event.is_set():  # checked once counted: a stopping run waits or it returns here
                self._claim_and_process(video_id, row)
        finally:
            with self._busy_changed:
                self._busy -= 1
                self._busy_changed.notify_all()

    def _claim_and_process(self, video_id: str, row: ArchiveRow | None) -> None:
        """Claim the video (another run may hold it), decide again on its fresh row, process, release."""
        try:
            claim = self.claims.claim(video_id)
        except ArchiveError as exc:
            self._stop_run(exc)
            return
        if not claim.granted:
            self._skip(video_id, claim.row, f"claimed by another run ({claim.holder})")
            return
        try:
            reason = self.admission.skip_reason(claim.row, time.time())  # another run may have done it
            if reason is None:
                self._process_claimed(video_id, claim.row)
            else:
                self._skip(video_id, claim.row, reason)
        finally:
            self._release(video_id)

    def _release(self, video_id: str) -> None:
        try:
            self.claims.release(video_id)
        except ArchiveError as exc:  # the claim expires on its own
            stopping = self.fatal is not None  # the user is told why the run stops, once
            log.log(
                logging.INFO if stopping else logging.WARNING,
                "%s: cannot release the claim: %s",
                video_id,
                exc,
            )

    def _process_claimed(self, video_id: str, row: ArchiveRow | None) -> None:
        worker = self._worker()
        attempt = _Attempt(video_id, row.title if row else None, time.monotonic())
        try:
            try:
                self._run_video(worker, attempt, row)
            except (NotesFatalError, DiskFullError):
                raise
            except (FetchError, NotesError, OutputError) as exc:
                self._fail(worker, attempt, exc)
        except (NotesFatalError, ArchiveError, TorError, DiskFullError) as exc:
            self._stop_run(exc)  # the row stays "running": the next run redoes it
        except RunStopped:
            return

    def _run_video(self, worker: Worker, attempt: _Attempt, row: ArchiveRow | None) -> None:
        video_id = attempt.video_id
        self.monitor.stage(video_id, Stage.FETCHING, worker.index)
        self.archive.start(video_id)
        if (reason := self._unavailable.get(video_id)) is not None:
            raise PermanentError(video_id, reason)  # its playlist lists it as private or deleted
        fetched = self._fetch(worker, video_id)
        if self.hurry.is_set():
            raise RunStopped  # a second Ctrl-C: leave the video for the rerun rather than start its notes
        if fetched.meta.title:
            attempt.title = fetched.meta.title
            self.monitor.set_title(video_id, attempt.title)
        if self.batch is not None:
            self.batch.defer(fetched.meta, fetched.transcript)  # the note comes with a batch's results
            self.monitor.stage(video_id, Stage.NOTES, worker.index)
            return
        body = self._notes(worker, fetched)
        self._complete(worker, attempt, fetched, body, row)

    def _complete(
        self,
        worker: Worker | None,
        attempt: _Attempt,
        fetched: FetchResult,
        body: NoteBody | None,
        row: ArchiveRow | None,
        batch_id: str | None = None,
    ) -> None:
        """Write the note and record the video done (`worker` is None for a note from a batch)."""
        video_id = attempt.video_id
        self.monitor.stage(video_id, Stage.WRITING, worker.index if worker else None)
        written = self.writer.write(fetched.meta, fetched.transcript, body, row)
        self.archive.record_done(
            video_id,
            title=attempt.title,
            channel=fetched.meta.channel,
            note_path=written.note_path,
            transcript_path=written.transcript_path,
            usage=body.usage if body else None,
            model=body.model if body else None,
            exit_fingerprint=self.pacer.exit_of(worker) if worker else None,
            elapsed_s=time.monotonic() - attempt.started,
            batch_id=batch_id,
            prompt_version=body.prompt_version if body else None,
        )
        self.archive.record_subject(video_id, written.subject)
        self.writer.release(written)  # on disk and in the archive: no longer reserved
        outcome = Outcome(video_id, Stage.DONE, attempt.title, None, None, written.note_path)
        self.monitor.finish(outcome, worker.index if worker else None)

    def _collect_batches(self) -> None:
        """--batch: submit what the fetch stage deferred, then wait for every open batch's results."""
        if self.batch is None or self.stop_event.is_set():
            return
        try:
            self.batch.submit()
            self.batch.collect(self.stop_event, self._finish_batched)
        except (NotesError, ArchiveError, OutputError) as exc:
            self._stop_run(exc)  # the batch stays open in the archive: the next run polls it again

    def _finish_batched(self, outcome: BatchOutcome) -> None:
        row = self.archive.get(outcome.video_id)
        attempt = _Attempt(outcome.video_id, row.title if row else None, time.monotonic())
        if isinstance(outcome.result, StudyBuddyError) or outcome.fetched is None:
            assert isinstance(outcome.result, StudyBuddyError)  # no saved transcript comes with an error
            self._fail(None, attempt, outcome.result)
            return
        self.monitor.set_title(outcome.video_id, outcome.fetched.meta.display_title)
        try:
            self._complete(None, attempt, outcome.fetched, outcome.result, row, outcome.batch_id)
        except DiskFullError:
            raise
        except OutputError as exc:
            self._fail(None, attempt, exc)

    def _fetch(self, worker: Worker, video_id: str) -> FetchResult:
        transient_tries = rotations = 0
        moved = False
        while True:
            self.pacer.before_video(worker, self.stop_event)
            try:
                fetched = worker.fetcher.fetch(video_id)
                self.pacer.after_video(worker)
                return fetched
            except BlockedError as exc:
                if not self.pacer.can_move(worker) or rotations >= self.retry.max_rotations:
                    raise
                log.info("%s: blocked (%s); renewing worker %d's circuit", video_id, exc.reason, worker.index)
                rotations += self.pacer.on_blocked(worker, exc)  # blocks of exits that serve nobody: free
            except GeoBlockedError as exc:
                if moved or not self.pacer.can_move(worker):
                    raise
                moved = True  # an exit in another country may play it: one more try, no blame
                log.info("%s: %s; trying once more through another exit", video_id, exc.reason)
                self.pacer.move(worker)
            except TransientError as exc:
                if transient_tries >= self.retry.max_retries:
                    raise
                delay = self.retry.backoff(transient_tries)
                transient_tries += 1
                log.info("%s: %s; retrying in %.1f s", video_id, exc.reason, delay)
                if self.stop_event.wait(delay):
                    raise RunStopped from exc  # stopping: leave the video for the rerun, not failed
            self.monitor.stage(video_id, Stage.FETCHING, worker.index)

    def _notes(self, worker: Worker, fetched: FetchResult) -> NoteBody | None:
        if self.engine is None:
            return None
        self.monitor.stage(fetched.meta.video_id, Stage.NOTES, worker.index)
        return self.engine.generate(fetched.meta, fetched.transcript)

    def _fail(self, worker: Worker | None, attempt: _Attempt, exc: StudyBuddyError) -> None:
        kind = error_kind(exc)
        reason = exc.reason if isinstance(exc, FetchError) else str(exc)
        self.archive.record_failed(
            attempt.video_id,
            kind,
            reason,
            title=attempt.title,
            exit_fingerprint=self.pacer.exit_of(worker) if worker else None,
            elapsed_s=time.monotonic() - attempt.started,
            retry_delay=self.schedule.delay,
        )
        outcome = Outcome(attempt.video_id, Stage.FAILED, attempt.title, kind.value, reason, None)
        self.monitor.finish(outcome, worker.index if worker else None)

    def _stop_run(self, exc: StudyBuddyError) -> None:
        with self._workers_lock:
            if self.fatal is None:
                self.fatal = exc
        self.stop_event.set()
