"""A run's workers: every pool thread gets its own `Worker` from the `WorkerFactory`.

A `Worker` owns everything that is not thread-safe or that identifies it to YouTube: its SOCKS identity
(hence its own Tor circuit), or the user's proxy it works through; its `requests.Session`; and its
`TranscriptFetcher` (youtube-transcript-api is not thread-safe). A `Pacer` decides when a worker may fetch
and what a block does to it (`run.pacing.TorPacer` per Tor exit, `run.proxypacing` per proxy;
`RenewingPacer` without a controller). `RetryPolicy` bounds retries; `RunStopped` is how a waiting worker
learns the run is stopping.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import requests

from studybuddy.config import Settings
from studybuddy.egress.sessions import LISTER, Identity, ProxyEndpoint, last_source, new_run_id, new_session
from studybuddy.errors import BlockedError
from studybuddy.proxyspec import ProxySpec
from studybuddy.youtube.transcripts import SubtitleOptions, TranscriptFetcher

__all__ = ["Pacer", "RenewingPacer", "RetryPolicy", "RunStopped", "Worker", "WorkerFactory"]

log = logging.getLogger(__name__)


class Worker:
    """One thread's identity, HTTP session and transcript client, kept for all of that thread's videos."""

    def __init__(
        self,
        index: int,
        *,
        settings: Settings,
        proxy: ProxyEndpoint | None,
        run_id: str,
        egress: ProxySpec | None = None,
    ) -> None:
        self.index = index
        self.egress = egress  # a proxy of the user's instead of Tor
        self.identity = Identity.first(run_id, index) if proxy and egress is None else None
        self.next_identity = self.identity.next() if self.identity else None  # known ahead: see TorPacer
        self.circuit_started = time.monotonic()
        self._settings = settings
        self.proxy = proxy
        self.session, self.fetcher = self._connect()

    def _connect(self) -> tuple[requests.Session, TranscriptFetcher]:
        session = new_session(
            identity=self.identity,
            proxy=self.proxy if self.identity else None,
            ca_bundle=self._settings.ca_bundle,
            egress=self.egress,
        )
        fetcher = TranscriptFetcher(
            session,
            languages=self._settings.languages,
            translate_to=self._settings.translate_to,
            use_ytdlp=self._settings.use_ytdlp,
            debug_dir=self._settings.output / ".debug" if self._settings.keep_temp else None,
            subtitles=SubtitleOptions(
                self._settings.transcripts, self._settings.pot_provider, self._settings.cookies
            ),
        )
        return session, fetcher

    @property
    def can_renew(self) -> bool:
        """A worker on Tor can get a new circuit, one on a rotating proxy a new exit IP (a new session);
        a direct one, or one on a fixed proxy, keeps its IP."""
        return self.identity is not None or (self.egress is not None and self.egress.rotating)

    def circuit_age(self) -> float:
        """Seconds since this worker's current identity (circuit) was made."""
        return time.monotonic() - self.circuit_started

    @property
    def last_source(self) -> tuple[str, int] | None:
        """The local address of the connection that carried the latest answer (names its Tor stream)."""
        return last_source(self.session)

    def renew(self, identity: Identity | None = None) -> None:
        """Move to `identity` (a spare whose circuit is built), else the next generation: new credentials,
        new session and client (old sockets would stay on the old circuit); on a rotating proxy a new
        session (new connections, a new exit IP)."""
        if not self.can_renew:
            return
        self.close()
        if self.identity is not None and self.next_identity is not None:
            self.identity = identity or self.next_identity
            self.next_identity = self.identity.next()
        self.circuit_started = time.monotonic()
        self.session, self.fetcher = self._connect()
        log.debug("worker %d renewed its circuit: %r", self.index, self.identity or self.egress)

    def use_egress(self, egress: ProxySpec) -> None:
        """Move to another proxy: a new session and client through it."""
        self.close()
        self.egress = egress
        self.circuit_started = time.monotonic()
        self.session, self.fetcher = self._connect()
        log.debug("worker %d moved to %s", self.index, egress)

    def close(self) -> None:
        self.fetcher.close()
        self.session.close()


class WorkerFactory:
    """Builds the `Worker` of each pool thread; numbers them in the order threads ask."""

    def __init__(
        self,
        settings: Settings,
        *,
        proxy: ProxyEndpoint | None,
        run_id: str | None = None,
        egress_for: Callable[[int], ProxySpec | None] | None = None,
    ) -> None:
        self.settings = settings
        self.proxy = proxy
        self.run_id = run_id or new_run_id()
        self.egress_for = egress_for or (lambda _index: None)  # worker number -> its proxy (None: Tor)
        self._numbers = itertools.count()
        self._lock = threading.Lock()

    def __call__(self) -> Worker:
        with self._lock:
            index = next(self._numbers)
        return self.make(index)

    def make(self, index: int) -> Worker:
        """Worker number `index`, on its egress."""
        egress = self.egress_for(index)
        return Worker(index, settings=self.settings, proxy=self.proxy, run_id=self.run_id, egress=egress)

    def lister(self) -> Worker:
        """The worker that lists playlists and channels: its number and SOCKS username are its own, so it
        shares neither pacing state nor circuits with a pool worker."""
        return Worker(
            LISTER, settings=self.settings, proxy=self.proxy, run_id=self.run_id, egress=self.egress_for(0)
        )


class RunStopped(Exception):
    """The run is stopping (Ctrl-C or a fatal error) while a worker waited: leave the video for a rerun."""


class Pacer(Protocol):
    """Decides when a worker may fetch and what a block does to it (`pacing.TorPacer` paces per exit)."""

    def before_video(self, worker: Worker, stop: threading.Event) -> None:
        """Return when the worker may fetch; raise `RunStopped` if `stop` is set meanwhile."""

    def after_video(self, worker: Worker) -> None: ...

    def on_blocked(self, worker: Worker, error: BlockedError) -> bool:
        """Deal with a block (and move the worker); True when it counts against the video: the exit that
        got it serves other videos, so it is not (only) the exit's fault."""

    def move(self, worker: Worker) -> None:
        """Give the worker another circuit (another egress) without charging its exit with a block."""

    def can_move(self, worker: Worker) -> bool:
        """Whether the worker can get another IP at all (a block is worth a retry)."""

    def exit_of(self, worker: Worker) -> str | None: ...

    def release(self, worker: Worker) -> None:
        """`worker` is done for this run (the playlist lister): forget its exit and its row."""

    def close(self) -> None: ...


class RenewingPacer:
    """Without a Tor controller: no pacing; a block renews a proxied worker's identity."""

    def before_video(self, worker: Worker, stop: threading.Event) -> None:
        if stop.is_set():
            raise RunStopped

    def after_video(self, worker: Worker) -> None:
        return None

    def on_blocked(self, worker: Worker, error: BlockedError) -> bool:
        worker.renew()
        return True  # nothing tells exits apart here: every block counts

    def move(self, worker: Worker) -> None:
        worker.renew()

    def can_move(self, worker: Worker) -> bool:
        return worker.can_renew

    def exit_of(self, worker: Worker) -> str | None:
        return None

    def release(self, worker: Worker) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries: transient errors back off exponentially with jitter; blocks renew the circuit."""

    max_retries: int = 3
    max_rotations: int = 5
    backoff_s: float = 2.0
    max_backoff_s: float = 60.0

    @classmethod
    def for_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.max_retries, settings.max_rotations, settings.backoff_s)

    def backoff(self, attempt: int) -> float:
        base: float = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return base * (0.5 + random.random() / 2)
