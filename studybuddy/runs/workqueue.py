"""`work`: take videos from the shared queue of an archive and process them, until the queue is empty (or,
with `--follow`, until Ctrl-C or SIGTERM).

Machines share the queue through the archive (`--archive postgresql://...`): each round claims a few videos
for this worker (`Archive.take`: `FOR UPDATE SKIP LOCKED` on PostgreSQL, so no video goes to two machines)
and runs them like `process` does, the claims renewed while they run. A worker that dies keeps its videos
only until its claims expire (`--claim-ttl`); then another takes them. Without `--follow` a worker that finds
nothing to take waits while other machines still hold videos, and stops once none is left.

Losing the archive (the server restarts, the network drops) pauses the worker: nothing is marked failed, the
run in progress stops, and the worker tries again with backoff; its claims expire or are released.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from studybuddy.config import Settings
from studybuddy.egress.sessions import new_run_id
from studybuddy.errors import ArchiveError
from studybuddy.owners import process_owner
from studybuddy.runs.admission import Admission
from studybuddy.runs.listing import Plan
from studybuddy.store.archive import Archive
from studybuddy.youtube.inputs import Inputs

log = logging.getLogger(__name__)

MAX_PAUSE_S = 60.0
MAX_FAILURES_IN_ROW = 12  # about 8 minutes of backoff with the archive gone: then the worker gives up


@dataclass(slots=True)
class WorkStats:
    rounds: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0

    def report(self) -> str:
        return (
            f"Work stopped: {self.rounds} round(s); {self.done} video(s) done, {self.failed} failed, "
            f"{self.skipped} skipped."
        )


def enqueue(settings: Settings, inputs: Inputs, *, warn: Callable[[str], None]) -> tuple[Plan, int]:
    """Add the videos `inputs` name to the archive's queue, their playlists and channels listed as a run
    lists them (`runner.list_inputs`). Returns the plan (with the lists that could not be listed) and how
    many videos were new. Videos a playlist lists as private or deleted are not queued."""
    from studybuddy.runs.runner import list_inputs

    with Archive.open(settings.output, settings.archive) as archive:
        plan = list_inputs(settings, inputs, archive, warn=warn)
        return plan, archive.enqueue([vid for vid in plan.video_ids if vid not in plan.unavailable])


def work(
    settings: Settings,
    *,
    follow: bool,
    poll_s: float,
    warn: Callable[[str], None],
    stop: threading.Event | None = None,
) -> WorkStats:
    """Process queued videos round by round (a few per worker thread each) until the queue is empty, or
    `stop` is set (with `follow`, only then)."""
    from studybuddy.egress.torlaunch import TorKeeper
    from studybuddy.runs.runner import open_tor, run

    stop = stop or threading.Event()
    run_id = new_run_id()
    owner = process_owner(run_id)
    stats = WorkStats()
    tor = TorKeeper(lambda: open_tor(settings, warn))
    failures = 0
    try:
        with Archive.open(settings.output, settings.archive) as archive:
            try:
                while not stop.is_set():
                    try:
                        taken = archive.take(
                            owner, ttl_s=settings.claim_ttl_s, limit=settings.thread_count * 2
                        )
                        if not taken and not follow and archive.unfinished() == 0:
                            return stats
                    except ArchiveError as exc:
                        failures += 1
                        _pause(exc, failures, stop, warn)
                        continue
                    if not taken:
                        stop.wait(poll_s)  # other machines hold the rest, or (--follow) nothing is queued
                        continue
                    try:
                        outcome = run(  # its own stop event: a run sets it when it ends
                            settings,
                            taken,
                            [],
                            warn=warn,
                            admission=Admission(due_only=True),
                            tor=tor,
                            run_id=run_id,
                        )
                    except ArchiveError as exc:  # gone before the round began: its claims expire
                        failures += 1
                        _pause(exc, failures, stop, warn)
                        continue
                    stats.rounds += 1
                    stats.done += outcome.summary.done
                    stats.failed += outcome.summary.failed
                    stats.skipped += outcome.summary.skipped
                    if outcome.fatal:
                        failures += 1
                        _pause(outcome.fatal, failures, stop, warn)
                    else:
                        failures = 0
            finally:
                try:
                    archive.release_all(owner)
                except ArchiveError as exc:  # they expire on their own
                    log.warning("cannot release this worker's claims: %s", exc)
    finally:
        tor.close()
    return stats


def _pause(problem: object, failures: int, stop: threading.Event, warn: Callable[[str], None]) -> None:
    """Back off after a failed round (the archive unreachable, Tor gone); give up after too many in a row.

    The first failure of a streak is one line for the user; the tries after it are logged (`--log-level
    info`), so a worker waiting minutes for its server says so once, not at every try."""
    if failures >= MAX_FAILURES_IN_ROW:
        raise ArchiveError(f"{problem} ({failures} tries in a row; stopping)")
    pause = min(MAX_PAUSE_S, 2.0**failures)
    if failures == 1:
        warn(f"{problem}; trying again in {pause:.0f}s (and with backoff after that)")
    else:
        log.info("%s; try %d failed, trying again in %.0fs", problem, failures, pause)
    stop.wait(pause)
