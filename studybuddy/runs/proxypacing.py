"""Per-proxy pacing: the user's proxies are egress identities, paced and scored exactly like Tor exits.

Each proxy is one identity with a key of its own (`egress_key`: its URL without the password), so the same
`ExitLimiter` rules (budget per window, least interval, cool-down after a block) and the same `Reputation`
(served, blocked, adaptive pace, kept in the archive) apply to it as to a Tor exit. Before each video a
worker on proxies takes a proxy that may serve now: proxies that served before unknown ones before blocked
ones, the least used first. When none can, the worker waits (interruptibly) until the first frees up.

A rotating proxy (its exit IP changes per connection or session) stands for a pool of IPs: its budget is
`--per-exit` times the number of workers (each worker's session is an IP of its own at a time), and a block
renews that worker's session (a new IP) and slows the pool's pace instead of cooling the whole pool.

With `--egress tor,proxies`, `MixedPacer` sends the workers on Tor to the Tor pacer and the others here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence

from studybuddy.config import Settings
from studybuddy.egress.exits import Decision, ExitLimiter
from studybuddy.egress.reputation import ExitPace, Reputation
from studybuddy.errors import BlockedError
from studybuddy.proxyspec import ProxySpec, egress_key
from studybuddy.runs.progress import ProgressMonitor
from studybuddy.runs.workers import Pacer, RunStopped, Worker
from studybuddy.store.exit_records import Standing
from studybuddy.timebase import REAL_TIME, Timebase

log = logging.getLogger(__name__)

MIN_WAIT_S = 0.05
_PREFERENCE = {Standing.GOOD: 0, Standing.UNKNOWN: 1, Standing.BAD: 2}


class ProxyPacer:
    """Paces each proxy as one identity (a rotating one as a pool), moves workers between proxies."""

    def __init__(
        self,
        proxies: Sequence[ProxySpec],
        settings: Settings,
        monitor: ProgressMonitor,
        reputation: Reputation,
        *,
        workers: int,
        past_uses: Iterable[tuple[str, float]] = (),
        on_event: Callable[[str, str], None] | None = None,
        timebase: Timebase = REAL_TIME,
    ) -> None:
        if not proxies:
            raise ValueError("a proxy pacer needs at least one proxy")
        self.proxies = {egress_key(spec): spec for spec in proxies}
        self.reputation = reputation
        self.monitor = monitor
        self.on_event = on_event or (lambda _key, _event: None)  # (key, "use"|"block")
        self._pool_size = max(1, workers)
        self._time = timebase
        self.limiter = ExitLimiter(
            settings.per_exit,
            min_interval_s=settings.exit_interval_s,
            jitter_s=settings.exit_interval_s / 2,
            cooldown_s=settings.exit_cooldown_s,
            clock=timebase.monotonic,
            pace=self._pace,
        )
        self.limiter.set_exit_pool(self.proxies)
        for key, seconds in reputation.cooling().items():
            if key in self.proxies and not self.proxies[key].rotating:
                self.limiter.cool_down(key, seconds)
        for key, seconds_ago in past_uses:
            if key in self.proxies:
                self.limiter.replay_use(key, seconds_ago)
        self._lock = threading.Lock()
        self._on: dict[int, str] = {}  # worker -> the proxy its current video was paced on

    def _pace(self, key: str) -> ExitPace:
        """The proxy's own pace; a rotating proxy's is that of `workers` IPs."""
        pace = self.reputation.limits(key)
        if not self.proxies[key].rotating:
            return pace
        return ExitPace(pace.count * self._pool_size, pace.interval_s / self._pool_size)

    # -- before a video ------------------------------------------------------------------------------

    def before_video(self, worker: Worker, stop: threading.Event) -> None:
        """Return when `worker` is on a proxy that may serve now (moving it there), or wait for one."""
        while not stop.is_set():
            for key in self._candidates(worker):
                verdict = self.limiter.acquire(key)
                if verdict.decision is Decision.GO:
                    self._go(worker, key)
                    return
            wait_s = max(self.limiter.wait_until_any(), MIN_WAIT_S)
            log.info("worker %d: no proxy may serve now; waiting %.1f s", worker.index, wait_s)
            if self._time.sleep(wait_s, stop):
                break
        raise RunStopped

    def _candidates(self, worker: Worker) -> list[str]:
        """Proxies not cooling down: those that served before unknown ones before blocked ones, the least
        used first (the worker's own among equals: its session is warm)."""
        current = egress_key(worker.egress) if worker.egress is not None else None

        def order(key: str) -> tuple[int, int, int]:
            standing = _PREFERENCE[self.reputation.standing(key)]
            return (standing, self.limiter.uses_in_window(key), key != current)

        return sorted((key for key in self.proxies if not self.limiter.cooling_left(key)), key=order)

    def _go(self, worker: Worker, key: str) -> None:
        spec = self.proxies[key]
        if worker.egress != spec:
            worker.use_egress(spec)
        with self._lock:
            self._on[worker.index] = key
        self.on_event(key, "use")
        self.monitor.worker_info(
            worker.index, exit_label=str(spec), circuit_started=self.monitor.now() - worker.circuit_age()
        )

    # -- after an answer -----------------------------------------------------------------------------

    def after_video(self, worker: Worker) -> None:
        key = self.exit_of(worker)
        if key is not None:
            self.reputation.served(key)

    def on_blocked(self, worker: Worker, error: BlockedError) -> bool:
        """Blame the proxy: a fixed one cools down (the worker moves on at its next video), a rotating one
        slows down and gives this worker a new session (a new IP). True when the proxy serves others."""
        key = self.exit_of(worker)
        if key is None:
            worker.renew()
            return True
        counts = self.reputation.record(key).is_serving
        cooldown_s = self.reputation.blocked(key)
        self.on_event(key, "block")
        spec = self.proxies[key]
        if spec.rotating:
            log.warning("rotating proxy %s: an IP of it was blocked (%s); new session", spec, error.reason)
            worker.renew()
        else:
            self.limiter.cool_down(key, cooldown_s)
            log.warning("proxy %s blocked (%s): cooling down %.0f s", spec, error.reason, cooldown_s)
        with self._lock:
            self._on.pop(worker.index, None)
        return counts

    def move(self, worker: Worker) -> None:
        """Another IP for this worker without blaming its proxy: a new session of a rotating proxy, else
        the next proxy (used at the worker's next video, if it may serve)."""
        if worker.egress is not None and worker.egress.rotating:
            worker.renew()
            return
        keys = list(self.proxies)
        current = egress_key(worker.egress) if worker.egress is not None else keys[-1]
        following = keys[(keys.index(current) + 1) % len(keys)] if current in keys else keys[0]
        worker.use_egress(self.proxies[following])

    def can_move(self, worker: Worker) -> bool:
        """Another proxy, or a new session of a rotating one."""
        return len(self.proxies) > 1 or (worker.egress is not None and worker.egress.rotating)

    def exit_of(self, worker: Worker) -> str | None:
        with self._lock:
            return self._on.get(worker.index)

    def release(self, worker: Worker) -> None:
        with self._lock:
            self._on.pop(worker.index, None)
        self.monitor.forget_worker(worker.index)

    def close(self) -> None:
        return None


class MixedPacer:
    """`--egress tor,proxies`: workers on Tor are paced per exit, workers on proxies per proxy."""

    def __init__(self, tor: Pacer, proxies: ProxyPacer) -> None:
        self._tor = tor
        self._proxies = proxies

    def _for(self, worker: Worker) -> Pacer:
        return self._tor if worker.egress is None else self._proxies

    def before_video(self, worker: Worker, stop: threading.Event) -> None:
        self._for(worker).before_video(worker, stop)

    def after_video(self, worker: Worker) -> None:
        self._for(worker).after_video(worker)

    def on_blocked(self, worker: Worker, error: BlockedError) -> bool:
        return self._for(worker).on_blocked(worker, error)

    def move(self, worker: Worker) -> None:
        self._for(worker).move(worker)

    def can_move(self, worker: Worker) -> bool:
        return self._for(worker).can_move(worker)

    def exit_of(self, worker: Worker) -> str | None:
        return self._for(worker).exit_of(worker)

    def release(self, worker: Worker) -> None:
        self._for(worker).release(worker)

    def close(self) -> None:
        self._tor.close()
        self._proxies.close()
