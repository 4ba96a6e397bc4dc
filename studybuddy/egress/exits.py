"""Per-exit pacing: one `ExitLimiter` shared by every worker thread.

YouTube sees a Tor exit relay's address, so the exit is the identity we pace: a budget of COUNT uses
per sliding WINDOW, a minimum interval (plus random jitter) between two uses, and a cool-down after a
block. Workers on different exits run concurrently; workers that share an exit share its budget.

The limiter never sleeps. It answers with a `Verdict` and the caller acts on it:

- GO: the exit is within budget and its interval has passed (`acquire` has reserved the use);
- WAIT `wait_s`: the exit is free again sooner than a new circuit would find a free one, or no other exit
  could serve;
- RENEW: this exit is cooling down or out of budget for longer than that, and another exit could serve:
  build a new circuit.

"Could another exit serve?" is judged from the exit pool. Until `set_exit_pool` is given the exits of the
consensus, a fresh exit is assumed to be available, so a long-blocked exit always gives RENEW. Once the
pool is known, RENEW needs an exit of the pool, other than this one, that is not cooling down, has
budget left (an exit never used, or forgotten, has its whole budget) and is not `taken` by another worker
(its budget is that worker's).

A new circuit is not free: it costs what the caller measures (`observe_renewal`: circuit build and exit
probe), and it lands on an exit Tor picks, which could serve with the chance p = the share of the usable
exits that could. Expected time to a free exit is cost / p; an exit that frees sooner than that is waited
for, unless another worker shares it (two workers on one exit halve each other's budget, so one moves).
With the real network's thousand exits that is rare, but with a small pool (a country's exits, a test
network) it keeps workers spread over the exits instead of hopping between exhausted ones.

An exit key is normally a relay fingerprint (40 hex digits); the caller may pass any other key (such as
"unknown") while the exit is not known yet. Exits whose state has expired completely are forgotten, so
memory stays bounded by the exits used within max(window, cool-down).
"""

from __future__ import annotations

import logging
import math
import random
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from studybuddy.egress.reputation import ExitPace
from studybuddy.units import ExitBudget

log = logging.getLogger(__name__)

RENEWAL_SAMPLES = 5  # a renewal costs the median of this many last ones (one slow circuit is not the norm)


class ExitOpinion(Protocol):
    """What else but budgets and cool-downs says whether an exit is worth a new circuit (its record)."""

    def acceptable(self, exit_fp: str) -> bool: ...

    def exceptions(self) -> frozenset[str]:
        """The exits whose answer may differ from that of an exit nobody knows."""

    def unknown_acceptable(self) -> bool:
        """The answer for an exit nobody knows."""


class _Indifferent:
    """Every exit is acceptable (no records kept)."""

    def acceptable(self, exit_fp: str) -> bool:
        return True

    def exceptions(self) -> frozenset[str]:
        return frozenset()

    def unknown_acceptable(self) -> bool:
        return True


class Decision(StrEnum):
    """What a worker should do before using its exit."""

    GO = "go"
    RENEW = "renew"
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The limiter's answer: `wait_s` is how long to sleep before asking again (0 unless WAIT)."""

    decision: Decision
    wait_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """One exit as the progress view shows it."""

    fp: str
    uses_in_window: int
    budget: ExitBudget  # what this exit may carry now (its own pace, at most --per-exit)
    next_allowed_in_s: float
    cooling_left_s: float


@dataclass(slots=True)
class _ExitState:
    """The mutable record of one exit; only touched under the limiter's lock."""

    uses: deque[float] = field(default_factory=deque)
    next_allowed: float = -math.inf
    cooling_until: float = -math.inf


class ExitLimiter:
    """Thread-safe per-exit pacing, budget and cool-down; the clock and randomness are injectable."""

    def __init__(
        self,
        budget: ExitBudget,
        *,
        min_interval_s: float,
        jitter_s: float,
        cooldown_s: float,
        renewal_cost_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = random.random,
        pace: Callable[[str], ExitPace] | None = None,
        opinion: ExitOpinion | None = None,
    ) -> None:
        if min(min_interval_s, jitter_s, cooldown_s, renewal_cost_s) < 0:
            raise ValueError("min_interval_s, jitter_s, cooldown_s and renewal_cost_s must not be negative")
        self._budget = budget
        self._min_interval_s = min_interval_s
        self._jitter_s = jitter_s
        self._cooldown_s = cooldown_s
        self._renewal_guess_s = renewal_cost_s  # until measured: a guess at a new circuit on the real network
        self._renewals: deque[float] = deque(maxlen=RENEWAL_SAMPLES)
        self._clock = clock
        self._random = random
        self._lock = threading.Lock()
        self._exits: dict[str, _ExitState] = {}
        self._pool: frozenset[str] | None = None
        self._pace = pace or (lambda _fp: ExitPace(budget.count, 0.0))  # each exit's own budget
        self._opinion = opinion or _Indifferent()  # whether a new circuit on an exit would be used

    @property
    def renewal_cost_s(self) -> float:
        """What one new circuit costs: the median of the last few measured, or the guess before any."""
        with self._lock:
            return self._renewal_cost()

    def observe_renewal(self, seconds: float) -> None:
        """Learn what a new circuit really costs here (from its build to its exit being known)."""
        if seconds < 0 or not math.isfinite(seconds):
            return
        with self._lock:
            self._renewals.append(seconds)

    def set_exit_pool(self, fingerprints: Iterable[str]) -> None:
        """Tell the limiter which exits a new circuit can land on (the consensus's exit relays)."""
        pool = frozenset(fingerprints)
        with self._lock:
            self._pool = pool
        log.debug("exit pool: %d exits", len(pool))

    def acquire(self, exit_fp: str, taken: Collection[str] = ()) -> Verdict:
        """What a worker on `exit_fp` should do now; a GO also records the use (check and reserve at once).

        `taken`: exits other workers are on. Their budget is theirs, so a new circuit landing there would
        not help: they do not count as exits that could serve.
        """
        with self._lock:
            now = self._now()
            verdict = self._decide(exit_fp, now, frozenset(taken))
            if verdict.decision is Decision.GO:
                state = self._exits.setdefault(exit_fp, _ExitState())
                state.uses.append(now)
                state.next_allowed = now + self._interval(exit_fp) + self._jitter_s * self._random()
        log.debug("exit %s: %s (%s)", exit_fp, verdict.decision, verdict.reason)
        return verdict

    def record(self, exit_fp: str) -> None:
        """Count a use that happened without `acquire` (a stream Tor put on another exit)."""
        with self._lock:
            now = self._now()
            state = self._exits.setdefault(exit_fp, _ExitState())
            state.uses.append(now)
            state.next_allowed = max(state.next_allowed, now + self._interval(exit_fp))

    def replay_use(self, exit_fp: str, seconds_ago: float) -> None:
        """Bring back a use of an earlier run (oldest first), so a rerun keeps the budgets."""
        with self._lock:
            now = self._now()
            at = now - max(0.0, seconds_ago)
            if at > now - self._budget.window_s:
                state = self._exits.setdefault(exit_fp, _ExitState())
                state.uses.append(at)
                state.next_allowed = max(state.next_allowed, at + self._min_interval_s)

    def cool_down(self, exit_fp: str, seconds: float | None = None) -> None:
        """Keep `exit_fp` out of use for `seconds` (default: the configured cool-down) after a block."""
        duration = self._cooldown_s if seconds is None else seconds
        if duration < 0:
            raise ValueError("a cool-down cannot be negative")
        with self._lock:
            now = self._now()
            state = self._exits.setdefault(exit_fp, _ExitState())
            state.cooling_until = max(state.cooling_until, now + duration)
        log.info("exit %s cooling down for %.0fs", exit_fp, duration)

    def cooling(self) -> dict[str, float]:
        """Exits still cooling down, with their seconds left (to exclude them from new circuits)."""
        with self._lock:
            now = self._now()
            return {
                fp: state.cooling_until - now
                for fp, state in self._exits.items()
                if state.cooling_until > now
            }

    def cooling_left(self, exit_fp: str) -> float:
        """Seconds this exit still cools down (0: not cooling)."""
        with self._lock:
            state = self._exits.get(exit_fp)
            return 0.0 if state is None else max(0.0, state.cooling_until - self._clock())

    def status(self) -> list[ExitStatus]:
        """Every exit the limiter remembers, sorted by key."""
        with self._lock:
            now = self._now()
            return [
                ExitStatus(
                    fp=fp,
                    uses_in_window=len(state.uses),
                    budget=ExitBudget(self._pace(fp).count, self._budget.window_s),
                    next_allowed_in_s=max(0.0, state.next_allowed - now),
                    cooling_left_s=max(0.0, state.cooling_until - now),
                )
                for fp, state in sorted(self._exits.items())
            ]

    def wait_until_any(self) -> float:
        """Seconds until the earliest acceptable exit (remembered or in the pool) is usable; 0 if one is now
        (or none is acceptable: then there is nothing to wait for)."""
        with self._lock:
            now = self._now()
            earliest = self._earliest_acceptable(self._exits.keys() | (self._pool or frozenset()), now)
            return 0.0 if earliest is None else earliest

    def any_could_serve(self, taken: Collection[str] = ()) -> bool:
        """Whether some exit of the pool is acceptable, not cooling, has budget and no other worker on it
        (True while the pool is unknown)."""
        with self._lock:
            now = self._now()
            if self._pool is None:
                return True
            return self._serving(self._pool - frozenset(taken), now) > 0

    def ready_now(self, candidates: Iterable[str]) -> list[str]:
        """Those of `candidates` that may be used now (interval, budget and cool-down all satisfied), the
        least used in the window first."""
        with self._lock:
            now = self._now()
            ready = [
                (len(state.uses) if state else 0, fp)
                for fp in candidates
                if (state := self._exits.get(fp)) is None or self._ready_in(fp, state, now) == 0
            ]
        return [fp for _uses, fp in sorted(ready)]

    def uses_in_window(self, exit_fp: str) -> int:
        """How many uses of this exit fall in the current budget window."""
        with self._lock:
            self._now()
            state = self._exits.get(exit_fp)
            return 0 if state is None else len(state.uses)

    # Everything below runs under the lock.

    def _renewal_cost(self) -> float:
        return statistics.median(self._renewals) if self._renewals else self._renewal_guess_s

    def _now(self) -> float:
        """Read the clock once for this call, dropping expired uses and forgetting expired exits."""
        now = self._clock()
        horizon = now - self._budget.window_s
        for fp, state in list(self._exits.items()):
            while state.uses and state.uses[0] <= horizon:
                state.uses.popleft()
            if not state.uses and state.next_allowed <= now and state.cooling_until <= now:
                del self._exits[fp]
        return now

    def _interval(self, exit_fp: str) -> float:
        """The least time between two uses of this exit: the user's, or longer while it is paced down."""
        return max(self._min_interval_s, self._pace(exit_fp).interval_s)

    def _ready_in(self, exit_fp: str, state: _ExitState, now: float) -> float:
        """Seconds until this exit may be used: interval, window budget and cool-down all satisfied."""
        count = self._pace(exit_fp).count
        budget_free_at = state.uses[-count] + self._budget.window_s if len(state.uses) >= count else now
        return max(0.0, state.next_allowed - now, state.cooling_until - now, budget_free_at - now)

    def _is_exhausted(self, exit_fp: str, state: _ExitState) -> bool:
        return len(state.uses) >= self._pace(exit_fp).count

    def _could_serve(self, exit_fp: str, now: float) -> bool:
        """Whether a new circuit on this exit could be used soon: acceptable, not cooling, budget left."""
        if not self._opinion.acceptable(exit_fp):
            return False
        state = self._exits.get(exit_fp)
        return state is None or (state.cooling_until <= now and not self._is_exhausted(exit_fp, state))

    def _serving(self, candidates: frozenset[str], now: float) -> int:
        """How many of `candidates` could serve. Only exits the limiter or the opinion knows are looked at
        one by one; the others are alike (fresh, and acceptable or not together): with the real network's
        thousands of exits, a decision costs what is known, not the whole pool."""
        known = (self._opinion.exceptions() | self._exits.keys()) & candidates
        serving = sum(1 for fp in known if self._could_serve(fp, now))
        if self._opinion.unknown_acceptable():
            serving += len(candidates) - len(known)
        return serving

    def _share_that_could_serve(self, exit_fp: str, now: float, taken: frozenset[str]) -> float:
        """The chance that a new circuit (Tor avoids cooling exits) lands on an exit other than this one,
        with budget left and no other worker on it: 1 while the pool is unknown, 0 when none could serve."""
        if self._pool is None:
            return 1.0
        cooling = sum(
            1 for fp, state in self._exits.items() if fp in self._pool and state.cooling_until > now
        )
        return self._serving(self._free_others(exit_fp, taken), now) / max(1, len(self._pool) - cooling)

    def _earliest_acceptable(self, candidates: Collection[str], now: float) -> float | None:
        """Seconds until the first acceptable one of `candidates` is usable (0 for a fresh acceptable one);
        None when none is acceptable."""
        fresh = [fp for fp in candidates if fp not in self._exits]
        if fresh and any(self._opinion.acceptable(fp) for fp in self._fresh_sample(fresh)):
            return 0.0
        known = [fp for fp in candidates if fp in self._exits and self._opinion.acceptable(fp)]
        return self._earliest_ready_in(known, now) if known else None

    def _fresh_sample(self, fresh: list[str]) -> list[str]:
        """Fresh exits the opinion knows, and one it does not (all of those are alike)."""
        exceptions = self._opinion.exceptions()
        known = [fp for fp in fresh if fp in exceptions]
        unknown = next((fp for fp in fresh if fp not in exceptions), None)
        return known if unknown is None else [*known, unknown]

    def _free_others(self, exit_fp: str, taken: frozenset[str]) -> frozenset[str]:
        """Exits of the pool other than this one that no other worker is on."""
        return (self._pool or frozenset()) - taken - {exit_fp}

    def _earliest_ready_in(self, candidates: Iterable[str], now: float) -> float:
        """Seconds until the first of `candidates` is usable: 0 if one is new to the limiter or none given."""
        return min(
            (self._ready_in(fp, self._exits[fp], now) if fp in self._exits else 0.0 for fp in candidates),
            default=0.0,
        )

    def _decide(self, exit_fp: str, now: float, taken: frozenset[str]) -> Verdict:
        state = self._exits.get(exit_fp)
        if state is None:
            return Verdict(Decision.GO, 0.0, "fresh exit")
        ready_in = self._ready_in(exit_fp, state, now)
        if ready_in == 0:
            count = self._pace(exit_fp).count
            return Verdict(Decision.GO, 0.0, f"{len(state.uses)}/{count} uses in the window")
        if state.cooling_until > now:
            reason = f"cooling down after a block, {state.cooling_until - now:.0f}s left"
        elif self._is_exhausted(exit_fp, state):
            reason = f"used {len(state.uses)} times in the last {self._budget.window_s:g}s"
        else:
            reason = f"minimum interval, {ready_in:.1f}s left"
        share = self._share_that_could_serve(exit_fp, now, taken)
        if exit_fp in taken and share > 0:
            # two workers on one exit halve each other's budget and serialise on its interval: one moves
            return Verdict(Decision.RENEW, 0.0, f"{reason}; another worker shares this exit and one is free")
        return self._wait_or_renew(exit_fp, ready_in, reason, now, taken, share)

    def _wait_or_renew(
        self, exit_fp: str, ready_in: float, reason: str, now: float, taken: frozenset[str], share: float
    ) -> Verdict:
        """The exit is unavailable for `ready_in` seconds: renew if a new circuit is expected to find a
        free exit sooner (`share`: the chance that it lands on one), else wait (for this exit, or for the
        first free other one to free up)."""
        if share == 0:
            other = self._earliest_acceptable(self._free_others(exit_fp, taken), now)
            wait_s = ready_in if other is None else min(ready_in, other)
            return Verdict(
                Decision.WAIT,
                wait_s,
                f"{reason}; every other exit is cooling down, out of budget or in use by another worker",
            )
        renewal_s = self._renewal_cost() / share
        if ready_in <= renewal_s:
            return Verdict(
                Decision.WAIT, ready_in, f"{reason}; free again sooner than a new circuit (~{renewal_s:.1f}s)"
            )
        return Verdict(Decision.RENEW, 0.0, reason)
