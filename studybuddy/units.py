"""Units the user types: durations (`30m`, `1h30m`, `45`) and per-exit budgets (`8/10m`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from studybuddy.errors import InputError

_NUMBER = r"\d+(?:\.\d+)?"
_DURATION_RE = re.compile(rf"(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m)?(?:(?P<s>{_NUMBER})s)?")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str, *, option: str = "duration") -> float:
    """Seconds in `30m`, `90s`, `1h30m`, `2.5m` or a bare number of seconds (`45`).

    `option` names the input in the error message (e.g. `--cooldown`).
    """
    candidate = text.strip().lower()
    seconds: float | None = None
    if re.fullmatch(_NUMBER, candidate):
        seconds = float(candidate)
    elif candidate and (match := _DURATION_RE.fullmatch(candidate)):
        seconds = sum(
            float(value) * _UNIT_SECONDS[unit] for unit, value in match.groupdict().items() if value
        )
    if seconds is None or not math.isfinite(seconds):
        raise InputError(f"{option} {text!r}: expected a duration like 30m, 90s, 1h30m or 45 (seconds)")
    return seconds


@dataclass(frozen=True, slots=True)
class ExitBudget:
    """At most `count` uses of one exit in any sliding window of `window_s` seconds."""

    count: int
    window_s: float

    @classmethod
    def parse(cls, text: str) -> ExitBudget:
        """Parse `COUNT/WINDOW`: `8/10m`, `20/1h`, `5/30s`, `1/90` (seconds)."""
        count_text, slash, window_text = text.strip().partition("/")
        count_text = count_text.strip()
        if not slash or not count_text.isdigit() or not count_text.isascii():
            raise InputError(f"--per-exit {text!r}: expected COUNT/WINDOW like 8/10m (COUNT a whole number)")
        try:
            window_s = parse_duration(window_text)
        except InputError:
            raise InputError(
                f"--per-exit {text!r}: expected COUNT/WINDOW like 8/10m (WINDOW a duration)"
            ) from None
        count = int(count_text)
        if count < 1:
            raise InputError(f"--per-exit {text!r}: COUNT must be at least 1 video per window")
        if window_s <= 0:
            raise InputError(f"--per-exit {text!r}: WINDOW must be longer than 0s")
        return cls(count, window_s)
