"""The hostile bed: YouTube as it is today, on a private Tor network with many exits, most of them blocked.

`make_hostile` turns a fake YouTube (on the exits' addresses) against most exits: every watch request
through a blocked exit is refused (bot check, HTTP 429 or a reCAPTCHA page, in turn), while the few good
exits serve up to a tolerance the product is never told. Which exits are good is chosen at random (the
seed is the caller's), so no test can lean on an order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from tests.bed.tornet import ExitInfo
from tests.bed.youtube_server import FakeYouTube, Limit

HOSTILE_EXITS = 12
HOSTILE_FIRST_HOST = 101  # its exits' names resolve to 127.0.0.101..112, beside the friendly bed's
BLOCKED_FOR_GOOD_S = 3600.0


@dataclass(frozen=True)
class Hostility:
    """Which exits serve (with the tolerance hidden from the product) and which are blocked outright."""

    good: tuple[ExitInfo, ...]
    bad: tuple[ExitInfo, ...]
    tolerance: Limit

    def charged_wrongly(self, blocked_fingerprints: Sequence[str], stats: dict[str, object]) -> list[str]:
        """The exits the product blamed although the server never sent them a blocked answer."""
        exits = stats["exits"]
        assert isinstance(exits, dict)
        by_fingerprint = {info.fingerprint: info.address for info in (*self.good, *self.bad)}
        wrong = []
        for fingerprint in blocked_fingerprints:
            address = by_fingerprint.get(fingerprint)
            record = exits.get(address) if address else None
            if record is None or not sum(record["blocked_requests"].values()):
                wrong.append(fingerprint)
        return wrong


def make_hostile(
    youtube: FakeYouTube, exits: Sequence[ExitInfo], *, good: int, tolerance: Limit, seed: int
) -> Hostility:
    """Block all but `good` exits outright; the good ones serve `tolerance` (hidden from the product)."""
    chosen = random.Random(seed).sample(list(exits), good)
    blocked = Limit(videos=0, window=60.0, block_for=BLOCKED_FOR_GOOD_S, style="cycle")
    youtube.configure(
        limit=None,
        exit_limits={info.address: tolerance if info in chosen else blocked for info in exits},
    )
    youtube.reset()
    return Hostility(tuple(chosen), tuple(info for info in exits if info not in chosen), tolerance)
