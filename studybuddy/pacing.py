"""Per-exit pacing over real Tor circuits: the `Pacer` a run uses when a Tor controller is available.

Before each video a worker learns which exit its circuit really uses (it opens one SOCKS stream with its
own credentials, without sending a byte, and reads the exit from Tor's STREAM/CIRC events), then asks the
shared `ExitLimiter`:

- GO: fetch now (the use is counted against that exit's budget);
- RENEW: this exit is out of budget or cooling down, another could serve sooner than this one frees up:
  new credentials (a new circuit) for this worker only, and its old circuit is closed (what that costs,
  from renewal to the new exit being known, is measured and told to the limiter);
- WAIT: this exit frees up sooner than a new circuit would find a free one, or every exit is busy: sleep
  (interruptible), then ask again.

After a block the exit cools down, is added to `ExcludeExitNodes` (so no new circuit lands on it), and the
worker renews. When several new circuits in a row reach nothing, a global NEWNYM is the last resort (Tor
spaces them 10 s apart). Tor refusing the SOCKS connection means Tor is gone: the run stops with a clear
message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import socks

from .errors import BlockedError, TorError
from .exits import Decision, ExitLimiter
from .pipeline import RunStopped, Worker
from .progress import ProgressMonitor
from .sessions import Identity, ProxyEndpoint
from .tor import ExitRelay, TorController

log = logging.getLogger(__name__)

PROBE_TARGET = ("www.youtube.com", 443)
NEWNYM_AFTER_FAILED_CIRCUITS = 3  # the last resort: only after this many new circuits reached nothing
EVENT_WAIT_S = 5.0  # how long STREAM/CIRC events may lag behind a successful SOCKS connect
PREPARE_TIMEOUT_S = 30.0  # a spare circuit that takes longer is not worth waiting for


class TorPacer:
    """Knows each worker's exit from Tor and paces it with the shared limiter; renews one worker at a time."""

    def __init__(
        self,
        tor: TorController,
        limiter: ExitLimiter,
        monitor: ProgressMonitor,
        *,
        max_renewals: int = 10,
        probe_target: tuple[str, int] = PROBE_TARGET,
        probe_timeout_s: float = 60.0,
        on_event: Callable[[str, str], None] | None = None,
        prepare_circuits: bool = True,
    ) -> None:
        self.tor = tor
        self.limiter = limiter
        self.monitor = monitor
        self.max_renewals = max_renewals
        self.probe_target = probe_target
        self.probe_timeout_s = probe_timeout_s
        self.on_event = on_event or (lambda _fingerprint, _event: None)  # (fingerprint, "use"|"block")
        self._exits: dict[int, ExitRelay] = {}  # worker -> the exit its current video was paced on
        self._renewed_at: dict[int, float] = {}  # worker -> when its circuit was renewed, until probed
        self._seen: set[int] = set()  # workers probed at least once (their first probe is a new circuit too)
        self._prepare_circuits = prepare_circuits
        self._prepared: dict[int, tuple[Identity, threading.Thread]] = {}  # worker -> (identity, builder)
        self._lock = threading.Lock()
        self._pool = frozenset(tor.exit_fingerprints())
        limiter.set_exit_pool(self._pool)

    def before_video(self, worker: Worker, stop: threading.Event) -> None:
        """Return when `worker` may fetch on an exit within budget; renew or wait until then."""
        renewals = 0
        while not stop.is_set():
            relay = self._probe(worker)
            if relay is None:
                if renewals >= self.max_renewals:
                    raise TorError(f"no Tor circuit reached {self.probe_target[0]} in {renewals + 1} tries")
                renewals += 1
                if renewals == NEWNYM_AFTER_FAILED_CIRCUITS:
                    self._last_resort(worker, renewals)
                self._renew(worker)
                continue
            verdict = self.limiter.acquire(relay.fingerprint, taken=self._taken_by_others(worker))
            if verdict.decision is Decision.GO:
                self._paced(worker, relay)
                self.on_event(relay.fingerprint, "use")
                self._prepare_next_circuit(worker)
                return
            if verdict.decision is Decision.RENEW and renewals < self.max_renewals:
                renewals += 1
                log.info("worker %d: exit %s %s; renewing", worker.index, relay.label, verdict.reason)
                self._renew(worker)
                continue
            wait_s = verdict.wait_s or max(self.limiter.wait_until_any(), 0.05)
            log.info("worker %d: waiting %.1f s (%s)", worker.index, wait_s, verdict.reason)
            renewals = 0
            stop.wait(wait_s)
        raise RunStopped

    def _prepare_next_circuit(self, worker: Worker) -> None:
        """Have Tor build the circuit of the worker's next identity while this video is fetched, so that a
        renewal finds it built: Tor builds a circuit on demand, which takes seconds on the real network.
        One spare circuit per worker; its exit is probed again (at once) when the worker moves to it."""
        upcoming, proxy = worker.next_identity, worker.proxy
        if not self._prepare_circuits or upcoming is None or proxy is None:
            return
        builder = threading.Thread(
            target=self._prepare, args=(upcoming, proxy), name=f"circuit-w{worker.index}", daemon=True
        )
        with self._lock:
            prepared = self._prepared.get(worker.index)
            if prepared is not None and prepared[0] == upcoming:
                return
            self._prepared[worker.index] = (upcoming, builder)
            builder.start()

    def _wait_for_preparation(self, worker: Worker, identity: Identity) -> None:
        """Let the spare circuit of `identity` finish first: two streams racing for a circuit that does not
        exist yet could get two circuits, and later requests might use the other one (another exit)."""
        with self._lock:
            prepared = self._prepared.get(worker.index)
        if prepared is not None and prepared[0] == identity:
            prepared[1].join(PREPARE_TIMEOUT_S)

    def _prepare(self, identity: Identity, proxy: ProxyEndpoint) -> None:
        try:
            relay = probe_exit(
                self.tor, identity, proxy, target=self.probe_target, timeout_s=PREPARE_TIMEOUT_S
            )
        except Exception as exc:  # a best effort: the worker's own probe reports what is wrong
            log.debug("preparing the circuit of %s failed: %s", identity.username, exc, exc_info=exc)
            return
        log.debug("circuit of %s ready, exit %s", identity.username, relay.label if relay else None)

    def _last_resort(self, worker: Worker, failed: int) -> None:
        """New circuits of this worker keep failing: ask Tor for fresh circuits (and a fresh DNS cache)
        everywhere. Tor refuses a NEWNYM within 10 s of the last one, so workers cannot storm it."""
        if self.tor.newnym():
            log.warning(
                "worker %d: %d new circuits could not reach %s; asked Tor for new circuits (NEWNYM)",
                worker.index,
                failed,
                self.probe_target[0],
            )

    def on_blocked(self, worker: Worker, error: BlockedError) -> None:
        """Cool the exit down, keep it out of new circuits, and give this worker a new circuit."""
        relay = self._current(worker)
        if relay is not None:
            self.limiter.cool_down(relay.fingerprint)
            self.on_event(relay.fingerprint, "block")
            self.tor.set_excluded_exits(self._exclusions())
            log.warning("exit %s blocked (%s): cooling down", relay.label, error.reason)
        self._renew(worker)

    def move(self, worker: Worker) -> None:
        """A new circuit for this worker; its exit is not blamed (the video is unplayable in its country)."""
        self._renew(worker)

    def _taken_by_others(self, worker: Worker) -> set[str]:
        with self._lock:
            return {relay.fingerprint for index, relay in self._exits.items() if index != worker.index}

    def _exclusions(self) -> list[str]:
        """Cooling exits to keep out of new circuits, but never all of them: Tor could build no circuit
        at all (ExcludeExitNodes is strict), so the one that cools off first stays allowed."""
        cooling = self.limiter.cooling()
        if self._pool and self._pool <= cooling.keys():
            del cooling[min(cooling, key=cooling.__getitem__)]
        return list(cooling)

    def exit_of(self, worker: Worker) -> str | None:
        relay = self._current(worker)
        return relay.fingerprint if relay else None

    def after_video(self, worker: Worker) -> None:
        """Count the video against the exit Tor really used, if the stream moved (dirtiness, conflux)."""
        paced = self._current(worker)
        if worker.identity is None or paced is None:
            return
        used = self.tor.exit_for(worker.identity.username)
        if used is not None and used.fingerprint != paced.fingerprint:
            log.info("worker %d: stream moved from %s to %s", worker.index, paced.label, used.label)
            self.limiter.record(used.fingerprint)
            self.on_event(used.fingerprint, "use")

    def _current(self, worker: Worker) -> ExitRelay | None:
        with self._lock:
            return self._exits.get(worker.index)

    def _paced(self, worker: Worker, relay: ExitRelay) -> None:
        with self._lock:
            previous = self._exits.get(worker.index)
            self._exits[worker.index] = relay
        if previous is not None and previous.fingerprint != relay.fingerprint:
            worker.session.close()  # kept-alive sockets would stay on the old circuit
        self.monitor.worker_info(
            worker.index, exit_label=relay.label, circuit_started=self.monitor.now() - worker.circuit_age()
        )

    def _renew(self, worker: Worker) -> None:
        old = worker.identity.username if worker.identity else None
        worker.renew()
        with self._lock:
            self._exits.pop(worker.index, None)
            self._renewed_at[worker.index] = time.monotonic()
        if old is not None:
            self.tor.close_circuits_of(old)
        self.monitor.worker_info(worker.index, exit_label=None, circuit_started=self.monitor.now())

    def _probe(self, worker: Worker) -> ExitRelay | None:
        if worker.identity is None or worker.proxy is None:
            raise TorError("a Tor-paced worker needs SOCKS credentials")
        self._wait_for_preparation(worker, worker.identity)
        started = time.monotonic()
        relay = probe_exit(
            self.tor, worker.identity, worker.proxy, target=self.probe_target, timeout_s=self.probe_timeout_s
        )
        with self._lock:
            new_circuit_since = self._renewed_at.pop(worker.index, None)
            if worker.index not in self._seen:  # a worker's first circuit is a new one too
                self._seen.add(worker.index)
                new_circuit_since = started
        if new_circuit_since is not None:  # what a new circuit costs: the limiter weighs it against waiting
            self.limiter.observe_renewal(time.monotonic() - new_circuit_since)
        if relay is None:
            log.info("worker %d: no stream to %s through this circuit", worker.index, self.probe_target[0])
        return relay


def probe_exit(
    tor: TorController,
    identity: Identity,
    proxy: ProxyEndpoint,
    *,
    target: tuple[str, int] = PROBE_TARGET,
    timeout_s: float = 60.0,
) -> ExitRelay | None:
    """Open (and close, without sending a byte) one stream with `identity`'s credentials; Tor's events
    name the exit of its circuit. None when Tor answered but could not reach `target` (renew and retry);
    TorError when Tor itself is gone."""
    mark = tor.attachments()
    sock = socks.socksocket()
    sock.set_proxy(
        socks.SOCKS5,
        proxy.host,
        proxy.port,
        rdns=True,
        username=identity.username,
        password=identity.password,
    )
    sock.settimeout(timeout_s)
    try:
        sock.connect(target)
    except socks.ProxyConnectionError:
        raise TorError(f"Tor stopped answering on its SOCKS port {proxy}") from None
    except (socks.ProxyError, OSError) as exc:
        log.debug("no stream to %s for %s: %s", target[0], identity.username, exc)
        return None
    finally:
        sock.close()
    relay = tor.wait_for_stream(identity.username, mark, EVENT_WAIT_S)
    if relay is None:
        raise TorError(f"Tor reported no circuit for a stream it opened (is {proxy} Tor's SOCKS port?)")
    return relay
