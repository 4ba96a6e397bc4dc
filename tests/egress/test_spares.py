"""SpareCircuits: screening each worker's next circuit, and the bank of circuits on exits known to serve,
against a scripted network and a clock the test moves (background builds run at once, nothing sleeps)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from studybuddy.egress.sessions import Identity
from studybuddy.egress.spares import BANK_IDLE_S, SpareCircuits
from studybuddy.egress.tor import ExitRelay
from studybuddy.errors import TorError
from studybuddy.timebase import Task

GOOD, BAD, NEW = (ExitRelay(letter * 40, f"exit{letter}", "127.0.0.2") for letter in "GBN")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        self.now += seconds
        return stop.is_set()

    def start(self, target: Callable[[], None], name: str) -> Task:
        target()
        return Done()


class Done:
    def join(self, timeout: float | None = None) -> None:
        return None


class Network:
    """Each generation lands on the scripted exit; records probes and closed circuits."""

    def __init__(self, lands: dict[int, ExitRelay]) -> None:
        self.lands = lands
        self.probed: list[str] = []
        self.released: list[str] = []
        self.gone = False  # Tor died: every release fails

    def probe(self, identity: Identity, timeout_s: float) -> ExitRelay | None:
        self.probed.append(identity.username)
        return self.lands.get(identity.generation)

    def release(self, identity: Identity) -> None:
        if self.gone:
            raise TorError("Tor could not close circuit 3: ")
        self.released.append(identity.username)


def spares(network: Network, clock: Clock) -> SpareCircuits:
    judge = {GOOD: None, NEW: None, BAD: "known to be blocked"}
    return SpareCircuits(
        network,  # type: ignore[arg-type]
        lambda relay: judge[relay],
        clock,
        keep=lambda relay: relay == GOOD,
    )


def username(identity: Identity | None) -> str | None:
    return None if identity is None else identity.username


def test_screening_banks_a_circuit_on_an_exit_known_to_serve_and_builds_on_for_the_worker() -> None:
    network, clock = Network({1: BAD, 2: GOOD, 3: NEW}), Clock()
    circuits = spares(network, clock)
    circuits.prepare(0, Identity("run", 0, 1, "pw"))
    assert network.probed == ["sb-run-w0-g1", "sb-run-w0-g2", "sb-run-w0-g3"]
    assert network.released == ["sb-run-w0-g1"]  # the blocked exit's circuit is closed, the good one kept
    assert circuits.banked_exits() == {GOOD.fingerprint}
    assert username(circuits.take(0)) == "sb-run-w0-g3"  # the worker's own spare: the new exit
    assert username(circuits.withdraw(GOOD.fingerprint)) == "sb-run-w0-g2"  # any worker may take this one
    assert circuits.banked_exits() == frozenset()
    assert circuits.withdraw(GOOD.fingerprint) is None  # held by one worker at a time


def test_the_bank_keeps_one_circuit_per_exit_and_closes_idle_ones_and_all_at_the_end() -> None:
    network, clock = Network({}), Clock()
    circuits = spares(network, clock)
    first, second, third = (Identity("run", 1, n, "pw") for n in range(3))
    assert circuits.deposit(first, GOOD)
    assert not circuits.deposit(second, GOOD)  # the caller closes this one: one per exit is enough
    clock.now += BANK_IDLE_S + 1  # Tor would have dropped a circuit with no stream for that long
    assert circuits.banked_exits() == frozenset()
    assert network.released == ["sb-run-w1-g0"]
    assert circuits.deposit(third, NEW)
    circuits.close()
    assert network.released == ["sb-run-w1-g0", "sb-run-w1-g2"]
    assert not circuits.deposit(second, GOOD)  # a closing run banks nothing


def test_a_name_is_handed_out_once_though_banked_circuits_change_hands() -> None:
    circuits = spares(Network({}), Clock())
    mine = circuits.fresh(Identity("run", 3, 7, "pw"))
    # another worker took worker 3's banked generation 6: its next generation would be 7 again
    assert circuits.fresh(Identity("run", 3, 6, "pw").next()).username == "sb-run-w3-g8"
    assert mine.username == "sb-run-w3-g7"


def test_closing_when_tor_is_gone_leaves_the_run_s_own_report_alone() -> None:
    network, clock = Network({}), Clock()
    circuits = spares(network, clock)
    assert circuits.deposit(Identity("run", 1, 0, "pw"), GOOD)
    assert circuits.deposit(Identity("run", 2, 0, "pw"), NEW)
    network.gone = True
    circuits.close()  # raises nothing: the run reports what stopped it (Tor gone), not a failed close
    assert network.released == [] and circuits.banked_exits() == frozenset()
