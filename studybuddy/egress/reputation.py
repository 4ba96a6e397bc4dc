"""Exit reputation: which exits YouTube serves, which it blocks, and the pace each one tolerates.

Per exit (a Tor relay's fingerprint): videos served, blocks, failures to reach YouTube at all (counted
apart: they say nothing about YouTube), the last outcome with its time, and its pace: a
`store.exit_records.ExitRecord`, whose counts fade with a half-life, so an exit blocked last week is tried
again some day, and which exits pass may change from day to day. Records live in the archive
(`ReputationStore`), so every run on an archive starts from what the earlier ones learned.

Standing, from the faded counts: UNKNOWN while there is (almost) no evidence, GOOD when it served (at least
once for every three blocks: a serving exit that blocks now and then is paced down, not dropped), BAD
otherwise.

Pace (`PacePolicy`), per exit, additive increase and multiplicative decrease: `--per-exit` is the ceiling.
A block of an exit halves its pace and caps the climb back just below the pace it was blocked at; every
window's worth of videos served raises the pace by an eighth of the ceiling, up to that cap; a long run of
service raises the cap again. So an exit is never blocked twice in a row at the same pace. Below the
ceiling, videos on an exit are spread evenly over the window (a burst at a window's edge is what trips a
sliding-window limit). The cool-down after a block depends on the exit's record: an exit that served gets
a short one (it probably blocks for a while, not for good), doubling with every block in a row; an exit
that never served gets `--exit-cooldown`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from studybuddy.config import Settings
from studybuddy.store.exit_records import HALF_LIFE_S, ExitRecord, Outcome, Standing
from studybuddy.timebase import REAL_TIME, Timebase
from studybuddy.units import ExitBudget

log = logging.getLogger(__name__)

STANDING_KEPT_S = 60.0  # a standing is judged again after this long, or at once when its record changes
SHORT_COOLDOWN_MIN_S = 15.0  # the first cool-down of an exit that served: at least this...
CAP_RAISE_AFTER_WINDOWS = 3  # ...and its pace cap rises after this many full windows at the cap unblocked


class ReputationStore(Protocol):
    """Where records persist (the archive), changed atomically so that runs sharing it never lose one."""

    def exit_records(self) -> list[ExitRecord]: ...

    def update_exit_record(self, key: str, change: Callable[[ExitRecord], ExitRecord]) -> ExitRecord:
        """Apply `change` to the stored record of `key` (a new one if none) and store what it returns."""


@dataclass(frozen=True, slots=True)
class ExitPace:
    """What an exit may carry now: `count` videos per budget window, at least `interval_s` apart."""

    count: int
    interval_s: float


@dataclass(frozen=True, slots=True)
class PacePolicy:
    """AIMD pacing under the `--per-exit` ceiling, and cool-downs after blocks (see the module doc)."""

    ceiling: ExitBudget
    cooldown_s: float  # --exit-cooldown: what an exit that never served gets, and the longest of any

    @property
    def ceiling_per_hour(self) -> float:
        return self.ceiling.count * 3600.0 / self.ceiling.window_s

    @property
    def step_per_hour(self) -> float:
        return self.ceiling_per_hour / 8

    def rate(self, record: ExitRecord) -> float:
        """Videos per hour the exit may carry now."""
        return min(self.ceiling_per_hour, record.pace if record.pace is not None else math.inf)

    def limits(self, record: ExitRecord) -> ExitPace:
        rate = self.rate(record)
        per_window = rate * self.ceiling.window_s / 3600.0
        if rate >= self.ceiling_per_hour:
            return ExitPace(self.ceiling.count, 0.0)  # the user's budget and interval, as given
        return ExitPace(max(1, math.floor(per_window + 1e-9)), self.ceiling.window_s / max(per_window, 1e-9))

    def after_served(self, record: ExitRecord) -> ExitRecord:
        streak = record.streak + 1
        rate = self.rate(record)
        cap = self._cap(record)
        per_window = max(1.0, rate * self.ceiling.window_s / 3600.0)
        pace, pace_limit = record.pace, record.pace_limit
        if rate < cap and streak >= max(2.0, per_window):
            pace, streak = min(cap, rate + self.step_per_hour), 0
        elif rate >= cap and pace_limit is not None and streak >= CAP_RAISE_AFTER_WINDOWS * per_window:
            pace_limit, streak = min(self.ceiling_per_hour, pace_limit + self.step_per_hour), 0
        if pace is not None and pace >= self.ceiling_per_hour:
            pace = None
        if pace_limit is not None and pace_limit >= self.ceiling_per_hour:
            pace_limit = None
        return dataclasses.replace(record, pace=pace, pace_limit=pace_limit, streak=streak, blocks_in_row=0)

    def after_blocked(self, record: ExitRecord) -> ExitRecord:
        """Slow a serving exit down: half its pace, and its climb back capped below the pace it blocked at.

        A block right after a cool-down, with nothing served since the last block, says the spell outlasted
        the cool-down, not that the pace was too fast (it was not tried): the longer cool-down that follows
        (`cooldown_for`) answers it, and the pace stays."""
        if not record.has_served or record.blocks_in_row > 0:
            return dataclasses.replace(record, streak=0, blocks_in_row=record.blocks_in_row + 1)
        blocked_at = self.rate(record)
        floor = self.ceiling_per_hour / (self.ceiling.count * 4)  # a quarter of one video per window
        return dataclasses.replace(
            record,
            pace=max(floor, blocked_at / 2),
            pace_limit=max(floor, blocked_at - self.step_per_hour),
            streak=0,
            blocks_in_row=record.blocks_in_row + 1,
        )

    def cooldown_for(self, record: ExitRecord) -> float:
        """How long to keep the exit out after this block (`record`: as it was before the block)."""
        if not record.has_served:
            return self.cooldown_s
        short = max(SHORT_COOLDOWN_MIN_S, self.ceiling.window_s / 2)
        return min(self.cooldown_s, short * 2.0 ** min(record.blocks_in_row, 20))

    def _cap(self, record: ExitRecord) -> float:
        limit = record.pace_limit if record.pace_limit is not None else math.inf
        return min(self.ceiling_per_hour, limit)


class Reputation:
    """The records of every exit seen, shared by all workers (thread-safe), kept in a `ReputationStore`."""

    def __init__(
        self,
        policy: PacePolicy,
        *,
        store: ReputationStore | None = None,
        clock: Callable[[], float] = time.time,
        half_life_s: float = HALF_LIFE_S,
    ) -> None:
        self.policy = policy
        self._store = store
        self._clock = clock
        self._half_life_s = half_life_s
        self._lock = threading.Lock()
        self._records = {record.key: record for record in (store.exit_records() if store else ())}
        self._standings: dict[str, tuple[Standing, float]] = {}  # key -> (standing, when judged)
        self._known: frozenset[str] | None = None

    def record(self, key: str) -> ExitRecord:
        """The exit's record, faded to now (a blank one for an exit never seen)."""
        with self._lock:
            found = self._records.get(key)
        return (found or ExitRecord(key, updated_at=self._clock())).faded(self._clock(), self._half_life_s)

    def standing(self, key: str) -> Standing:
        """The exit's standing (kept for `STANDING_KEPT_S` between changes: evidence fades over days)."""
        now = self._clock()
        with self._lock:
            cached = self._standings.get(key)
            if cached is not None and now - cached[1] < STANDING_KEPT_S:
                return cached[0]
            found = self._records.get(key)
        standing = Standing.UNKNOWN if found is None else found.faded(now, self._half_life_s).standing
        with self._lock:
            self._standings[key] = (standing, now)
        return standing

    def known(self) -> frozenset[str]:
        """Every exit with a record (its standing may have faded back to UNKNOWN since)."""
        with self._lock:
            if self._known is None:
                self._known = frozenset(self._records)
            return self._known

    def limits(self, key: str) -> ExitPace:
        return self.policy.limits(self.record(key))

    def served(self, key: str) -> None:
        self._change(key, Outcome.SERVED, self.policy.after_served)

    def unreachable(self, key: str) -> None:
        self._change(key, Outcome.UNREACHABLE, lambda record: record)

    def blocked(self, key: str) -> float:
        """Record a block; returns how long the exit should cool down."""
        cooldown: list[float] = []

        def adapt(record: ExitRecord) -> ExitRecord:
            now = self._clock()
            if record.cooling_until is not None and record.cooling_until > now:
                cooldown.append(record.cooling_until - now)  # another answer of the same blocking spell
                return record
            before = dataclasses.replace(record, blocked=record.blocked - 1.0)  # as it was before this one
            cooldown.append(self.policy.cooldown_for(before))
            slowed = self.policy.after_blocked(record)
            return dataclasses.replace(slowed, cooling_until=now + cooldown[-1])

        self._change(key, Outcome.BLOCKED, adapt)
        return cooldown[-1]

    def cooling(self) -> dict[str, float]:
        """Exits whose cool-down (from this or an earlier run) has not ended: seconds left."""
        now = self._clock()
        with self._lock:
            return {
                key: record.cooling_until - now
                for key, record in self._records.items()
                if record.cooling_until is not None and record.cooling_until > now
            }

    def ranked(self) -> list[ExitRecord]:
        """Every exit with evidence, best first: by standing, then by how clearly it serves."""
        now = self._clock()
        with self._lock:
            records = [record.faded(now, self._half_life_s) for record in self._records.values()]
        order = {Standing.GOOD: 0, Standing.UNKNOWN: 1, Standing.BAD: 2}
        return sorted(
            records, key=lambda r: (order[r.standing], -(r.served - r.blocked), -(r.last_at or 0), r.key)
        )

    def _change(self, key: str, outcome: Outcome, adapt: Callable[[ExitRecord], ExitRecord]) -> None:
        now = self._clock()

        def change(stored: ExitRecord) -> ExitRecord:
            record = stored.faded(now, self._half_life_s)
            bump = {outcome.value: getattr(record, outcome.value) + 1.0}
            return adapt(dataclasses.replace(record, **bump, last_outcome=outcome, last_at=now))

        if self._store is not None:
            updated = self._store.update_exit_record(key, change)
        else:
            with self._lock:
                updated = change(self._records.get(key) or ExitRecord(key, updated_at=now))
        with self._lock:
            if key not in self._records:
                self._known = None
            self._records[key] = updated
            self._standings.pop(key, None)
        log.debug("exit %s %s: %s", key, outcome, updated)


def new_reputation(
    settings: Settings, store: ReputationStore | None, timebase: Timebase = REAL_TIME
) -> Reputation:
    """What the run knows of every exit and proxy (from `store`), scored by the settings' pace policy."""
    return Reputation(
        PacePolicy(settings.per_exit, settings.exit_cooldown_s), store=store, clock=timebase.time
    )
