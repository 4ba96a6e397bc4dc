"""Whether a request through an exit is worth making now, judged from its record before any is spent.

- An exit known to serve (GOOD) always is; its budget and cool-down are the limiter's business.
- An exit nobody knows yet (UNKNOWN) is a trial: worth it whenever `ExitTrials` lets the run try one.
- An exit known to block (BAD) is not, with one exception: when the pool holds no exit nobody knows and
  every exit known to serve is cooling down, exits that blocked before are tried again, as trials (at the
  same polite spacing). Which exits pass changes over time; a run must not stall on a verdict that has
  gone stale.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from studybuddy.egress.reputation import Reputation
from studybuddy.egress.trials import ExitTrials, seconds
from studybuddy.store.exit_records import Standing

RECHECK_S = 1.0  # how long "is there anything else?" (a walk over the whole pool) is reused


class ExitJudge:
    """An `exits.ExitOpinion`. Thread-safe (reads only thread-safe parts); `clock` in monotonic seconds."""

    def __init__(
        self, reputation: Reputation, trials: ExitTrials, pool: Collection[str], clock: Callable[[], float]
    ) -> None:
        self.reputation = reputation
        self.trials = trials
        self._pool = frozenset(pool)
        self._clock = clock
        self._nothing_else: tuple[float, bool] = (-RECHECK_S, False)  # (when checked, the answer)

    def reason_against(self, fingerprint: str) -> str | None:
        """None when a request through this exit is worth making now, else why not (a short phrase)."""
        standing = self.reputation.standing(fingerprint)
        if standing is Standing.GOOD:
            return None
        if not self.trials.may_try():
            return f"not known to serve, and new exits are tried every {seconds(self.trials.interval_s())}"
        if standing is Standing.BAD and not self._only_blocked_exits_left():
            return "known to be blocked"
        return None

    def acceptable(self, fingerprint: str) -> bool:
        return self.reason_against(fingerprint) is None

    def exceptions(self) -> frozenset[str]:
        return self.reputation.known()

    def unknown_acceptable(self) -> bool:
        return self.trials.may_try()

    def is_trial(self, fingerprint: str) -> bool:
        """Whether a request through this exit tries it (it is not known to serve)."""
        return self.reputation.standing(fingerprint) is not Standing.GOOD

    def _only_blocked_exits_left(self) -> bool:
        checked_at, answer = self._nothing_else
        now = self._clock()
        if now - checked_at < RECHECK_S:
            return answer
        known = self.reputation.known() & self._pool
        cooling = self.reputation.cooling()
        answer = len(known) == len(self._pool) and not any(
            self.reputation.standing(fp) is not Standing.BAD and fp not in cooling for fp in known
        )
        self._nothing_else = (now, answer)
        return answer
