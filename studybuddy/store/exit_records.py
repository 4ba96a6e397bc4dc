"""What the archive keeps of each exit (a Tor relay's fingerprint, or a proxy's key): an `ExitRecord`.

Counts fade with a half-life (`HALF_LIFE_S`): an exit blocked last week is tried again some day. Its
standing follows from the faded counts: UNKNOWN while there is (almost) no evidence, GOOD when it served (at
least once for every `GOOD_ODDS` blocks), BAD otherwise. How records change, and what they mean for pacing,
is `egress.reputation`'s business.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["HALF_LIFE_S", "RECORD_FIELDS", "ExitRecord", "Outcome", "Standing", "from_rows"]


HALF_LIFE_S = 2 * 24 * 3600.0  # evidence halves every two days
MIN_EVIDENCE = 0.25  # less than this (one block, four days ago) is no evidence: UNKNOWN again
GOOD_ODDS = 3.0  # an exit that serves once for every three blocks (or better) is still worth using


class Outcome(StrEnum):
    SERVED = "served"
    BLOCKED = "blocked"
    UNREACHABLE = "unreachable"


class Standing(StrEnum):
    GOOD = "good"
    UNKNOWN = "unknown"
    BAD = "bad"


@dataclass(frozen=True, slots=True)
class ExitRecord:
    """What is known of one exit. Counts are as of `updated_at` (Unix time); `faded` brings them to now."""

    key: str
    served: float = 0.0
    blocked: float = 0.0
    unreachable: float = 0.0
    last_outcome: Outcome | None = None
    last_at: float | None = None
    pace: float | None = None  # videos per hour allowed now (None: the ceiling)
    pace_limit: float | None = None  # videos per hour the pace may climb back to (None: the ceiling)
    streak: int = 0  # videos served since the pace last changed
    blocks_in_row: int = 0
    cooling_until: float | None = None  # Unix time its last cool-down ends
    updated_at: float = 0.0

    def faded(self, now: float, half_life_s: float = HALF_LIFE_S) -> ExitRecord:
        if now <= self.updated_at:
            return self
        factor = 0.5 ** ((now - self.updated_at) / half_life_s)
        return dataclasses.replace(
            self,
            served=self.served * factor,
            blocked=self.blocked * factor,
            unreachable=self.unreachable * factor,
            updated_at=now,
        )

    @property
    def standing(self) -> Standing:
        if self.served + self.blocked < MIN_EVIDENCE:
            return Standing.UNKNOWN
        return Standing.GOOD if self.has_served and self.served >= self.blocked / GOOD_ODDS else Standing.BAD

    @property
    def has_served(self) -> bool:
        return self.served >= MIN_EVIDENCE

    @property
    def is_serving(self) -> bool:
        """It has served, and served since its last block: a block now is not (only) its own spell."""
        return self.has_served and self.blocks_in_row == 0


def from_rows(rows: Iterable[tuple[object, ...]]) -> list[ExitRecord]:
    """Records from stored rows in `ExitRecord` field order (as the archive keeps them)."""
    records = []
    for row in rows:
        values = dict(zip(RECORD_FIELDS, row, strict=True))
        outcome = values["last_outcome"]
        values["last_outcome"] = Outcome(outcome) if isinstance(outcome, str) else None
        records.append(ExitRecord(**values))  # type: ignore[arg-type]
    return records


RECORD_FIELDS = tuple(field.name for field in dataclasses.fields(ExitRecord))
