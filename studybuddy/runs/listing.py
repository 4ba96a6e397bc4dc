"""Listing the playlists and channels of a run's input, on a worker of the run, paced like its videos.

`Expander` lists a `Collection` with `youtube.expand.list_videos` on one `Worker`, so its requests use that
worker's SOCKS identity (its own circuit) and trust the same CA bundle; before each listing it asks the
run's `Pacer` for the exit budget exactly as a video does (one slot per listing). A block moves the worker,
network trouble backs off; both are bounded. `plan_videos` puts the direct videos and the listed ones in
one list for `--order`, and reports what could not be listed as a bad input line.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from studybuddy.config import Settings
from studybuddy.errors import BlockedError, TransientError
from studybuddy.runs.workers import Pacer, RetryPolicy, RunStopped, Worker, WorkerFactory
from studybuddy.text import BadInput
from studybuddy.youtube.expand import ExpansionError, ListedVideo, list_videos, order_videos
from studybuddy.youtube.inputs import Collection, Inputs

__all__ = ["Expander", "Plan", "plan_videos"]

log = logging.getLogger(__name__)


class Expander:
    """Lists collections on one worker, paced like its videos, retrying blocks and network trouble."""

    def __init__(
        self,
        worker: Worker,
        pacer: Pacer,
        stop: threading.Event,
        retry: RetryPolicy,
        *,
        limit: int | None = None,
        since: datetime.date | None = None,
        lister: Callable[..., list[ListedVideo]] = list_videos,
    ) -> None:
        self.worker = worker
        self.pacer = pacer
        self.stop = stop
        self.retry = retry
        self.limit = limit
        self.since = since
        self._lister = lister

    def expand(self, collection: Collection) -> list[ListedVideo]:
        """The collection's videos; `ExpansionError` if it has none to give, `RunStopped` when stopping."""
        transient_tries = rotations = 0
        while True:
            self.pacer.before_video(self.worker, self.stop)
            try:
                videos = self._lister(collection.url, self.worker.session, limit=self.limit, since=self.since)
                self.pacer.after_video(self.worker)
                log.info("%s: %d videos listed", collection.url, len(videos))
                return videos
            except BlockedError as exc:
                if not self.pacer.can_move(self.worker) or rotations >= self.retry.max_rotations:
                    raise ExpansionError(f"{collection.url}: blocked by YouTube ({exc.reason})") from None
                rotations += self.pacer.on_blocked(
                    self.worker, exc
                )  # blocks of exits that serve nobody: free
            except TransientError as exc:
                if transient_tries >= self.retry.max_retries:
                    raise ExpansionError(f"{collection.url}: {exc.reason}") from None
                delay = self.retry.backoff(transient_tries)
                transient_tries += 1
                log.info("%s: %s; retrying in %.1f s", collection.url, exc.reason, delay)
                if self.stop.wait(delay):
                    raise RunStopped from exc


@dataclass
class Plan:
    """The videos a run takes, in `--order`, and the collections that could not be listed."""

    video_ids: list[str]
    bad: list[BadInput]
    duplicates: int = 0  # videos (and lists) named more than once: each is taken once
    unavailable: dict[str, str] = field(default_factory=dict)  # listed as private or deleted: id -> reason


def plan_videos(
    inputs: Inputs,
    settings: Settings,
    *,
    worker_factory: WorkerFactory,
    pacer: Pacer,
    retry: RetryPolicy,
    stop: threading.Event,
) -> Plan:
    """Direct videos, then each collection's videos (first seen wins), ordered for `settings.order`.

    The collections are listed on a worker of the run (same identity scheme, same CA bundle, same pacing),
    closed afterwards. A collection that cannot be listed is reported like a bad input line. When `stop` is
    set meanwhile, listing ends there: the collections not listed yet are left for the next run.
    """
    durations: dict[str, float | None] = dict.fromkeys(inputs.video_ids)
    plan = Plan([], [])
    listed = 0
    if inputs.collections:
        worker = worker_factory.lister()
        expander = Expander(worker, pacer, stop, retry, limit=settings.limit, since=settings.since)
        try:
            for collection in inputs.collections:
                try:
                    videos = expander.expand(collection)
                except ExpansionError as exc:
                    reason = str(exc).removeprefix(f"{collection.url}: ")
                    plan.bad.append(BadInput(collection.source, collection.text, reason))
                    continue
                listed += len(videos)
                for video in videos:  # first seen keeps its place; a listed duration fills a gap
                    durations[video.video_id] = durations.get(video.video_id) or video.duration
                    if video.unavailable:
                        plan.unavailable.setdefault(video.video_id, video.unavailable)
        except RunStopped:
            log.info("stopping: the playlists and channels not listed yet are left for the next run")
        finally:
            pacer.release(worker)
            worker.close()
    plan.video_ids = order_videos(list(durations), durations, settings.order)
    plan.duplicates = inputs.duplicates + len(inputs.video_ids) + listed - len(plan.video_ids)
    return plan
