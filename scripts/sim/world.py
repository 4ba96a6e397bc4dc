"""A synthetic Tor network and YouTube at internet scale, in virtual time.

`SimWorld` holds the exits (a share of them blocked outright, the others tolerating a number of videos in a
sliding window, drawn per exit, then blocking for a while) and implements
`studybuddy.egress.circuits.ExitNetwork` for the pacer: circuits are built (taking build_s) on an exit drawn
at random among those not excluded, the way Tor picks exits when all weigh the same; a stream of a circuit
whose exit has since been excluded goes on a new circuit, as in Tor. Fetching a video costs three requests,
a blocked attempt one or two.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from scripts.sim.vtime import VirtualTime
from studybuddy.egress.sessions import Identity
from studybuddy.egress.tor import ExitRelay

REQUESTS_PER_VIDEO = 3
CIRCUIT_IDLE_S = 600.0  # Tor's MaxCircuitDirtiness: a circuit with no new stream for this long is dropped


@dataclass(frozen=True)
class Shape:
    """What the simulated network is like."""

    exits: int = 1000
    blocked_share: float = 0.9
    tolerance: tuple[int, int] = (4, 16)  # videos per tolerance window a good exit serves, drawn per exit
    tolerance_window_s: float = 600.0
    block_s: float = 1800.0  # how long a good exit stays blocked once over its tolerance
    build_s: tuple[float, float] = (0.3, 3.0)
    request_s: tuple[float, float] = (0.2, 1.5)
    unreachable_share: float = 0.02  # circuits that cannot reach YouTube at all

    @property
    def mean_video_s(self) -> float:
        return REQUESTS_PER_VIDEO * sum(self.request_s) / 2


@dataclass
class SimExit:
    relay: ExitRelay
    good: bool
    tolerance: int
    served_at: deque[float] = field(default_factory=deque)
    blocked_until: float = -1.0


class SimWorld:
    """The exits, the circuits of every SOCKS identity, and YouTube's answers; counts what happened."""

    def __init__(self, shape: Shape, vt: VirtualTime, seed: int, *, private: bool = False) -> None:
        self.shape = shape
        self.vt = vt
        self.rng = random.Random(seed)
        self._private = private
        exits = []
        for n in range(shape.exits):
            relay = ExitRelay(f"{n:040X}", f"exit{n}", f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
            good = self.rng.random() >= shape.blocked_share
            exits.append(SimExit(relay, good, self.rng.randint(*shape.tolerance)))
        self.exits = {item.relay.fingerprint: item for item in exits}
        self.excluded: frozenset[str] = frozenset()
        self._allowed = list(self.exits)
        self.circuits: dict[str, str] = {}  # username -> exit fingerprint
        self._last_stream: dict[str, float] = {}  # username -> when its circuit last got a stream
        self.requests = 0
        self.blocked_answers = 0
        self.builds = 0
        self.newnyms = 0

    def next_run(self, vt: VirtualTime) -> None:
        """Another run on the same network, later (on the clock of `vt`): no circuits, no blocks left."""
        self.vt = vt
        self.circuits.clear()
        self.excluded = frozenset()
        self._allowed = list(self.exits)
        for item in self.exits.values():
            item.served_at.clear()
            item.blocked_until = -1.0
        self.requests = self.blocked_answers = self.builds = self.newnyms = 0

    # -- limits of this network ----------------------------------------------------------------------

    def tolerance_per_hour(self, ceiling_per_hour: float, among: Collection[str] | None = None) -> float:
        """What the good exits (of `among`, default all) allow together, each at most the ceiling: videos
        per hour."""
        per_hour = 3600.0 / self.shape.tolerance_window_s
        return sum(
            min(item.tolerance * per_hour, ceiling_per_hour)
            for fingerprint, item in self.exits.items()
            if item.good and (among is None or fingerprint in among)
        )

    # -- ExitNetwork ---------------------------------------------------------------------------------

    @property
    def private(self) -> bool:
        return self._private

    def exit_pool(self) -> frozenset[str]:
        return frozenset(self.exits)

    def probe(self, identity: Identity, timeout_s: float) -> ExitRelay | None:
        fingerprint = self._circuit(identity.username)
        if fingerprint is None:
            return None
        self.vt.spend(0.02, "probe")  # a stream on a built circuit
        return self.exits[fingerprint].relay

    def unreachable_exit(self, identity: Identity) -> ExitRelay | None:
        return None

    def release(self, identity: Identity) -> None:
        self.circuits.pop(identity.username, None)
        self._last_stream.pop(identity.username, None)

    def exclude(self, cooling: Mapping[str, float]) -> None:
        self.excluded = frozenset(cooling)
        self._allowed = [fp for fp in self.exits if fp not in self.excluded] or list(self.exits)

    def refresh(self) -> None:
        return None

    def newnym(self) -> bool:
        self.newnyms += 1
        self.circuits.clear()
        return True

    def carrier(self, identity: Identity, source: tuple[str, int] | None) -> ExitRelay | None:
        fingerprint = self.circuits.get(identity.username)
        return None if fingerprint is None else self.exits[fingerprint].relay

    # -- YouTube -------------------------------------------------------------------------------------

    def fetch(self, identity: Identity) -> bool:
        """Fetch one video through the identity's circuit: True served, False blocked."""
        if self.circuits.get(identity.username) in self.excluded:
            self.circuits.pop(identity.username, None)  # Tor moves the stream to a new circuit
        fingerprint = self._circuit(identity.username)
        if fingerprint is None:
            self._request("blocked")
            return False
        item = self.exits[fingerprint]
        watch_page_s = self.rng.uniform(*self.shape.request_s)
        self.requests += 1
        now = self.vt.now
        while item.served_at and item.served_at[0] <= now - self.shape.tolerance_window_s:
            item.served_at.popleft()
        if not item.good or now < item.blocked_until or len(item.served_at) >= item.tolerance:
            if item.good and now >= item.blocked_until:
                item.blocked_until = now + self.shape.block_s
            self.vt.spend(watch_page_s, "blocked")
            self._request("blocked")  # the player answer that says "not a bot"
            self.blocked_answers += 1
            return False
        item.served_at.append(now)
        self.vt.spend(watch_page_s, "served")
        for _ in range(REQUESTS_PER_VIDEO - 1):
            self._request("served")
        return True

    def _request(self, what: str) -> None:
        self.requests += 1
        self.vt.spend(self.rng.uniform(*self.shape.request_s), what)

    def _circuit(self, username: str) -> str | None:
        """The exit of the circuit a new stream of `username` gets (with KeepAliveIsolateSOCKSAuth every
        stream keeps a circuit fresh; one idle for CIRCUIT_IDLE_S is gone and a new one is built)."""
        fingerprint = self.circuits.get(username)
        idle = self.vt.now - self._last_stream.get(username, self.vt.now)
        self._last_stream[username] = self.vt.now
        if fingerprint is not None and idle < CIRCUIT_IDLE_S:
            return fingerprint
        self.builds += 1
        self.vt.spend(self.rng.uniform(*self.shape.build_s), "build")
        if self.rng.random() < self.shape.unreachable_share:
            return None
        fingerprint = self.rng.choice(self._allowed)
        self.circuits[username] = fingerprint
        return fingerprint
