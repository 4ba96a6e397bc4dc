"""Per-exit pacing over Tor circuits: the `Pacer` a run uses when it has a Tor (real, or simulated).

Before each video a worker learns which exit its circuit really uses (a probe: one stream opened without
a byte sent; Tor's events name the exit), judges that exit before any YouTube request is spent on it, and
asks the shared `ExitLimiter`:

- an exit known to be blocked, still cooling down, or unknown while the run is backing off from trying
  new exits, is turned down at once: the worker takes a banked circuit on an exit known to serve that may
  be used now, else its spare circuit (built and judged meanwhile, see `spares`), else a new one;
- GO: fetch now (the use counts against the exit's budget, at the exit's own adaptive pace);
- RENEW: this exit is out of budget for longer than a new circuit would take to find one that serves;
- WAIT: this exit frees up sooner, or no exit can serve now: sleep (interruptible), saying until when.

A banked circuit whose exit may be used now also wins over spending a trial on an exit not known to serve
(but not over a WAIT: the limiter judged waiting cheaper than moving, and moving drops the worker's
kept-alive connections). A worker leaving a circuit on an exit known to serve (out of budget, say) banks it.

After each answer the exit that really carried it (the stream's circuit, read from Tor's events by the
local address of the connection) gets the credit or the blame: a block cools that exit down (shortly if
it has served, for `--exit-cooldown` if it never did), slows its pace, keeps it out of new circuits, and
renews only this worker. A block counts against the *video* only when the exit is known to serve other
videos; otherwise it is the exit's fault, and the video tries elsewhere. If nothing at all has served
for `stall_after_s` although `STALL_TRIALS` exits were tried since (or every exit is known), the run
stops with a clear message instead of trying forever.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable

from studybuddy.config import Settings
from studybuddy.egress.circuits import ExitNetwork
from studybuddy.egress.exits import Decision, ExitLimiter
from studybuddy.egress.judge import ExitJudge
from studybuddy.egress.reputation import Reputation, ReputationStore, new_reputation
from studybuddy.egress.sessions import Identity
from studybuddy.egress.spares import SpareCircuits
from studybuddy.egress.tor import ExitRelay
from studybuddy.egress.trials import warm_trials
from studybuddy.errors import BlockedError, TorError
from studybuddy.runs.progress import ProgressMonitor
from studybuddy.runs.workers import RunStopped, Worker
from studybuddy.store.exit_records import Standing
from studybuddy.timebase import REAL_TIME, Timebase

log = logging.getLogger(__name__)

NEWNYM_AFTER_FAILED_CIRCUITS = 3  # the last resort: only after this many new circuits reached nothing
REJECTIONS_BEFORE_WAITING = 20  # exits turned down in a row before a worker pauses instead of renewing
MIN_PAUSE_S = 0.05
STALL_MIN_S = 600.0  # a run with nothing served stops after twice --exit-cooldown, at least this long...
STALL_TRIALS = 100  # ...and only after this many exits were tried since (1 in 10 serving: 0.9**100 < 0.01 %)
REJECTED_PAUSE_S = 5.0  # the least pause after `REJECTIONS_BEFORE_WAITING` circuits were turned down
NOTICE_AFTER_S = 15.0  # a wait this long is shown in the view and logged (shorter ones are routine pacing)
PAUSE_SLICE_S = 30.0  # a longer wait is cut into slices of this, each judged and announced anew: never silent


def build_pacer(
    network: ExitNetwork,
    settings: Settings,
    monitor: ProgressMonitor,
    *,
    store: ReputationStore | None,
    past_uses: Iterable[tuple[str, float]] = (),
    on_event: Callable[[str, str], None] | None = None,
    timebase: Timebase = REAL_TIME,
    random: Callable[[], float] = random.random,
    reputation: Reputation | None = None,
) -> TorPacer:
    """The pacer of a run, its limiter and its reputation, from the settings: the same assembly for a real
    Tor and a simulated one. `past_uses`: (exit, seconds ago) of earlier runs' uses, to keep budgets;
    `reputation`: one shared with the run's proxies (else a new one over `store`)."""
    reputation = reputation or new_reputation(settings, store, timebase)
    trials = warm_trials(reputation, network.exit_pool(), timebase)
    judge = ExitJudge(reputation, trials, network.exit_pool(), timebase.monotonic)
    limiter = ExitLimiter(
        settings.per_exit,
        min_interval_s=settings.exit_interval_s,
        jitter_s=settings.exit_interval_s / 2,
        cooldown_s=settings.exit_cooldown_s,
        clock=timebase.monotonic,
        random=random,
        pace=reputation.limits,
        opinion=judge,
    )
    for fingerprint, seconds in reputation.cooling().items():
        limiter.cool_down(fingerprint, seconds)
    for fingerprint, seconds_ago in past_uses:
        limiter.replay_use(fingerprint, seconds_ago)
    return TorPacer(
        network,
        limiter,
        judge,
        monitor,
        timebase=timebase,
        max_renewals=2 * settings.max_rotations,
        stall_after_s=max(2 * settings.exit_cooldown_s, STALL_MIN_S),
        on_event=on_event,
    )


class TorPacer:
    """Knows each worker's exit from Tor, paces it, learns which exits serve; renews one worker at a time."""

    def __init__(
        self,
        network: ExitNetwork,
        limiter: ExitLimiter,
        judge: ExitJudge,
        monitor: ProgressMonitor,
        *,
        timebase: Timebase = REAL_TIME,
        max_renewals: int = 10,
        probe_timeout_s: float = 60.0,
        stall_after_s: float = 3600.0,
        on_event: Callable[[str, str], None] | None = None,
        prepare_circuits: bool = True,
    ) -> None:
        self.network = network
        self.limiter = limiter
        self.exit_judge = judge
        self.reputation = judge.reputation
        self.trials = judge.trials
        self.monitor = monitor
        self.max_renewals = max_renewals
        self.probe_timeout_s = probe_timeout_s
        self.stall_after_s = stall_after_s
        self.on_event = on_event or (lambda _fingerprint, _event: None)  # (fingerprint, "use"|"block")
        self._time = timebase
        self._exits: dict[int, ExitRelay] = {}  # worker -> the exit its current video was paced on
        self._busy: set[int] = set()  # workers fetching right now (their exit's budget is theirs)
        self._renewed_at: dict[int, float] = {}  # worker -> when its circuit was renewed, until probed
        self._seen: set[int] = set()  # workers probed at least once (their first probe is a new circuit too)
        self._probed: dict[int, ExitRelay] = {}  # worker -> the exit its circuit had at its last probe
        self._spares = (
            SpareCircuits(network, self.judge, timebase, keep=self._bankable) if prepare_circuits else None
        )
        self._lock = threading.Lock()
        self._last_served = timebase.monotonic()
        self._notice: str | None = None
        self._pool = network.exit_pool()
        limiter.set_exit_pool(self._pool)

    def judge(self, relay: ExitRelay) -> str | None:
        """None when a request through this exit is worth making now, else why not (one short phrase)."""
        cooling = self.limiter.cooling_left(relay.fingerprint)
        if cooling:
            return f"cooling down after a block, {cooling:.0f}s left"
        return self.exit_judge.reason_against(relay.fingerprint)

    # -- before a video ------------------------------------------------------------------------------

    def before_video(self, worker: Worker, stop: threading.Event) -> None:
        """Return when `worker` may fetch on an exit worth a request and within budget; renew or wait."""
        failures = renewals = rejections = 0
        while not stop.is_set():
            self.network.refresh()
            relay = self._probe(worker)
            if relay is None:
                failures += 1
                if failures > self.max_renewals:
                    raise TorError(f"no Tor circuit reached YouTube in {failures} tries")
                if failures == NEWNYM_AFTER_FAILED_CIRCUITS:
                    self._last_resort(worker, failures)
                self._renew(worker)
                continue
            failures = 0  # only circuits failing in a row mean Tor cannot reach YouTube
            rejected = self.judge(relay)
            if rejected is not None:
                rejections += 1
                log.debug("worker %d: exit %s %s", worker.index, relay.label, rejected)
                if self._ready_banked(worker) is None and (
                    rejections >= REJECTIONS_BEFORE_WAITING or not self._others_could_serve(worker)
                ):
                    rejections = 0  # judged again after the pause: renewing helps only if another could serve
                    self._pause(stop, rejected, self._time_until_an_exit_serves())
                else:
                    self._renew(worker)
                continue
            if self.exit_judge.is_trial(relay.fingerprint) and (
                self._ready_banked(worker) is not None or not self.trials.begin(relay.fingerprint)
            ):
                self._renew(worker)  # an exit known to serve is free, or another worker just started a trial
                continue
            verdict = self.limiter.acquire(relay.fingerprint, taken=self._taken_by_others(worker))
            if verdict.decision is Decision.GO:
                self._go(worker, relay)
                return
            if verdict.decision is Decision.RENEW and renewals < self.max_renewals:
                renewals += 1
                log.info("worker %d: exit %s %s; renewing", worker.index, relay.label, verdict.reason)
                self._renew(worker)
                continue
            renewals = 0
            self._pause(stop, verdict.reason, verdict.wait_s or self.limiter.wait_until_any())
        raise RunStopped

    def _go(self, worker: Worker, relay: ExitRelay) -> None:
        self._paced(worker, relay)
        self.on_event(relay.fingerprint, "use")
        self._say(self.trials.notice())
        if self._spares is not None and worker.next_identity is not None:
            self._spares.prepare(worker.index, worker.next_identity)

    def _pause(self, stop: threading.Event, reason: str, wait_s: float) -> None:
        """Sleep until an exit may serve: this one, the first other one, or the next trial of a new one."""
        if self._stalled():
            raise TorError(
                f"no exit served YouTube for {self.stall_after_s / 60:.0f} min "
                f"({self.trials.tried_since_served} exit(s) tried since); YouTube seems to block every "
                "exit now: try again later"
            )
        wait_s = max(wait_s, MIN_PAUSE_S)
        if wait_s >= NOTICE_AFTER_S:
            state = self.trials.notice() or f"No exit can serve now ({reason})"
            self._say(f"{state}; next try in {wait_s:.0f} s")
        log.info("waiting %.1f s (%s)", wait_s, reason)
        if self._time.sleep(min(wait_s, PAUSE_SLICE_S), stop):
            raise RunStopped

    def _stalled(self) -> bool:
        """Nothing served for `stall_after_s`, though many exits were tried (or every exit is known)."""
        if self._time.monotonic() - self._last_served <= self.stall_after_s:
            return False
        every_exit_known = len(self.reputation.known() & self._pool) >= len(self._pool)
        return every_exit_known or self.trials.tried_since_served >= STALL_TRIALS

    def _others_could_serve(self, worker: Worker) -> bool:
        return self.limiter.any_could_serve(taken=self._taken_by_others(worker))

    def _time_until_an_exit_serves(self) -> float:
        """When an exit known to serve frees up, or the next new exit may be tried, whichever is first."""
        waits = [self.limiter.wait_until_any() or None, self.trials.next_try_in() or None]
        return min((wait for wait in waits if wait is not None), default=REJECTED_PAUSE_S)

    def _say(self, notice: str | None) -> None:
        """Show the run's state in the view, and log it once when it changes."""
        with self._lock:
            if notice == self._notice:
                return
            self._notice = notice
        if notice is not None:
            log.warning("%s", notice)
        self.monitor.notice(notice)

    def _last_resort(self, worker: Worker, failed: int) -> None:
        """New circuits of this worker keep failing: ask Tor for fresh circuits (and a fresh DNS cache)
        everywhere. Tor refuses a NEWNYM within 10 s of the last one, so workers cannot storm it."""
        if self.network.newnym():
            log.warning(
                "worker %d: %d new circuits could not reach YouTube; asked Tor for new circuits (NEWNYM)",
                worker.index,
                failed,
            )

    # -- after an answer -----------------------------------------------------------------------------

    def after_video(self, worker: Worker) -> None:
        """Credit the exit that really carried the answers (if the stream moved, it is counted there too)."""
        with self._lock:
            self._busy.discard(worker.index)
        paced = self._current(worker)
        used = self._carrier(worker) or paced
        if used is None:
            return
        if paced is not None and used.fingerprint != paced.fingerprint:
            log.info("worker %d: stream moved from %s to %s", worker.index, paced.label, used.label)
            self.limiter.record(used.fingerprint)
            self.on_event(used.fingerprint, "use")
        self.reputation.served(used.fingerprint)
        self.trials.record(used.fingerprint, served=True)
        self.trials.video_served()
        with self._lock:
            self._last_served = self._time.monotonic()
        self._say(self.trials.notice())

    def on_blocked(self, worker: Worker, error: BlockedError) -> bool:
        """Blame the exit that carried the blocked answer, cool it down, slow it, renew this worker.

        Returns whether the block counts against the video: only when that exit serves other videos (it
        has served since its last block); a block in an exit's blocking spell is the exit's own.
        """
        relay = self._carrier(worker) or self._current(worker)
        counts = False
        if relay is not None:
            counts = self.reputation.record(relay.fingerprint).is_serving
            self._blame(relay, error)
        self._renew(worker)
        return counts

    def _blame(self, relay: ExitRelay, error: BlockedError) -> None:
        fingerprint = relay.fingerprint
        cooldown_s = self.reputation.blocked(fingerprint)
        self.limiter.cool_down(fingerprint, cooldown_s)
        self.trials.record(fingerprint, served=False)
        self._say(self.trials.notice())
        self.on_event(fingerprint, "block")
        self.network.exclude(self._exclusions())
        log.warning("exit %s blocked (%s): cooling down %.0f s", relay.label, error.reason, cooldown_s)

    def move(self, worker: Worker) -> None:
        """A new circuit for this worker; its exit is not blamed (the video is unplayable in its country)."""
        self._renew(worker)

    def can_move(self, worker: Worker) -> bool:
        return worker.identity is not None

    def exit_of(self, worker: Worker) -> str | None:
        relay = self._current(worker)
        return relay.fingerprint if relay else None

    def close(self) -> None:
        if self._spares is not None:
            self._spares.close()

    def _carrier(self, worker: Worker) -> ExitRelay | None:
        if worker.identity is None:
            return None
        return self.network.carrier(worker.identity, worker.last_source)

    def _exclusions(self) -> dict[str, float]:
        """Cooling exits (seconds left); with a Tor of our own, exits known to be blocked as well."""
        excluded = self.limiter.cooling()
        if self.network.private:
            for record in self.reputation.ranked():
                if record.standing is Standing.BAD and record.key in self._pool:
                    excluded.setdefault(record.key, self.reputation.policy.cooldown_s)
        return excluded

    # -- circuits ------------------------------------------------------------------------------------

    def _taken_by_others(self, worker: Worker) -> set[str]:
        with self._lock:
            return {
                relay.fingerprint
                for index, relay in self._exits.items()
                if index != worker.index and index in self._busy
            }

    def release(self, worker: Worker) -> None:
        """`worker` is done (the playlist lister, before the pool starts): forget its exit, so no pool worker
        counts that exit as taken, and its row in the progress view."""
        with self._lock:
            self._exits.pop(worker.index, None)
            self._busy.discard(worker.index)
            self._renewed_at.pop(worker.index, None)
            self._seen.discard(worker.index)
            self._probed.pop(worker.index, None)
        spare = self._spares.take(worker.index) if self._spares is not None else None
        if spare is not None:
            self.network.release(spare)
        self.monitor.forget_worker(worker.index)

    def _current(self, worker: Worker) -> ExitRelay | None:
        with self._lock:
            return self._exits.get(worker.index)

    def _paced(self, worker: Worker, relay: ExitRelay) -> None:
        with self._lock:
            previous = self._exits.get(worker.index)
            self._exits[worker.index] = relay
            self._busy.add(worker.index)
        if previous is not None and previous.fingerprint != relay.fingerprint:
            worker.session.close()  # kept-alive sockets would stay on the old circuit
        self.monitor.worker_info(
            worker.index, exit_label=relay.label, circuit_started=self.monitor.now() - worker.circuit_age()
        )

    def _renew(self, worker: Worker) -> None:
        """Move `worker` to a banked circuit that may serve now, else its spare, else a new circuit; bank
        the circuit it leaves if its exit is known to serve, else close it."""
        old = worker.identity
        with self._lock:
            left = self._probed.pop(worker.index, None)
        worker.renew(self._next_identity(worker))
        with self._lock:
            self._exits.pop(worker.index, None)
            self._busy.discard(worker.index)
            self._renewed_at[worker.index] = self._time.monotonic()
        if old is not None and not (
            left is not None
            and self._bankable(left)
            and self._spares is not None
            and self._spares.deposit(old, left)
        ):
            self.network.release(old)
        self.monitor.worker_info(worker.index, exit_label=None, circuit_started=self.monitor.now())

    def _next_identity(self, worker: Worker) -> Identity | None:
        if self._spares is None:
            return None
        return self._spares.hand_out(worker.index, self._ready_banked(worker), worker.next_identity)

    def _held_by_others(self, worker: int | None = None) -> set[str]:
        with self._lock:
            return {relay.fingerprint for index, relay in self._probed.items() if index != worker}

    def _bankable(self, relay: ExitRelay) -> bool:
        """Whether a circuit on this exit is worth keeping for any worker: the exit is known to serve, is not
        cooling down, and no worker is on it."""
        return (
            self.reputation.standing(relay.fingerprint) is Standing.GOOD
            and not self.limiter.cooling_left(relay.fingerprint)
            and relay.fingerprint not in self._held_by_others()
        )

    def _ready_banked(self, worker: Worker) -> str | None:
        """A banked exit this worker may use now (known to serve, within budget, no other worker on it)."""
        if self._spares is None:
            return None
        banked = self._spares.banked_exits() - self._held_by_others(worker.index)
        ready = self.limiter.ready_now(banked)
        return next((fp for fp in ready if self.exit_judge.reason_against(fp) is None), None)

    def _probe(self, worker: Worker) -> ExitRelay | None:
        identity = worker.identity
        if identity is None:
            raise TorError("a Tor-paced worker needs SOCKS credentials")
        if self._spares is not None:
            self._spares.settle(worker.index, identity)
        started = self._time.monotonic()
        relay = self.network.probe(identity, self.probe_timeout_s)
        with self._lock:
            if relay is not None:
                self._probed[worker.index] = relay
            new_circuit_since = self._renewed_at.pop(worker.index, None)
            if worker.index not in self._seen:  # a worker's first circuit is a new one too
                self._seen.add(worker.index)
                new_circuit_since = started
        if new_circuit_since is not None:  # what a new circuit costs: the limiter weighs it against waiting
            self.limiter.observe_renewal(self._time.monotonic() - new_circuit_since)
        if relay is None:
            failed = self.network.unreachable_exit(identity)
            if failed is not None:
                self.reputation.unreachable(failed.fingerprint)
            log.info("worker %d: no stream to YouTube through this circuit", worker.index)
        return relay
