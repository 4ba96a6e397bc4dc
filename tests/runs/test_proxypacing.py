"""Tests for studybuddy.proxypacing: the user's proxies paced and scored like Tor exits."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from studybuddy.config import Settings
from studybuddy.egress.reputation import new_reputation
from studybuddy.errors import BlockedError
from studybuddy.proxyspec import ProxySpec, egress_key, parse_proxy
from studybuddy.runs.progress import ProgressMonitor
from studybuddy.runs.proxypacing import MixedPacer, ProxyPacer
from studybuddy.runs.workers import RenewingPacer, RunStopped, Worker
from studybuddy.units import ExitBudget
from tests.runs.test_pacing import ManualTime

P1, P2, P3 = (parse_proxy(f"http://alice:s3cret@127.0.0.{n}:8080") for n in (21, 22, 23))
ROTATING = parse_proxy("socks5h://user-rotate:r0tate@127.0.0.30:1080", rotating=True)


def settings(tmp_path: Path, budget: str = "2/60s") -> Settings:
    count, window = budget.removesuffix("s").split("/")
    return Settings(
        output=tmp_path,
        per_exit=ExitBudget(int(count), float(window)),
        exit_interval_s=0.0,
        exit_cooldown_s=300.0,
        parallel=True,
        workers=3,
    )


def pacer_of(
    tmp_path: Path, proxies: list[ProxySpec], clock: ManualTime, budget: str = "2/60s"
) -> ProxyPacer:
    chosen = settings(tmp_path, budget)
    return ProxyPacer(
        proxies,
        chosen,
        ProgressMonitor(),
        new_reputation(chosen, None, clock),
        workers=chosen.thread_count,
        timebase=clock,
    )


def worker(tmp_path: Path, index: int, egress: ProxySpec) -> Worker:
    return Worker(index, settings=settings(tmp_path), proxy=None, run_id="run1", egress=egress)


def blocked() -> BlockedError:
    return BlockedError("vid00000001", "HTTP 429 Too Many Requests")


def test_the_key_of_a_proxy_names_it_without_its_password() -> None:
    assert egress_key(P1) == "proxy:http://alice@127.0.0.21:8080"
    assert "r0tate" not in egress_key(ROTATING)


def test_workers_spread_over_the_least_used_proxies(tmp_path: Path) -> None:
    clock = ManualTime()
    pacer = pacer_of(tmp_path, [P1, P2, P3], clock)
    workers = [worker(tmp_path, index, P1) for index in range(3)]  # all start on the first proxy
    stop = threading.Event()
    for each in workers:
        pacer.before_video(each, stop)
    assert sorted(str(pacer.exit_of(each)) for each in workers) == sorted(egress_key(p) for p in (P1, P2, P3))
    assert [each.egress for each in workers] == [P1, P2, P3]  # each worker moved to the proxy it got


def test_a_blocked_proxy_cools_down_and_its_worker_moves_to_another(tmp_path: Path) -> None:
    clock = ManualTime()
    pacer = pacer_of(tmp_path, [P1, P2], clock)
    first = worker(tmp_path, 0, P1)
    stop = threading.Event()
    pacer.before_video(first, stop)
    assert pacer.on_blocked(first, blocked()) is False  # it never served: the proxy's fault, not the video's
    assert pacer.limiter.cooling_left(egress_key(P1)) == pytest.approx(300.0)
    pacer.before_video(first, stop)
    assert (first.egress, pacer.exit_of(first)) == (P2, egress_key(P2))
    pacer.after_video(first)
    assert pacer.reputation.record(egress_key(P2)).has_served
    assert pacer.reputation.record(egress_key(P1)).blocked == pytest.approx(1.0)


def test_a_block_on_a_proxy_that_serves_counts_against_the_video(tmp_path: Path) -> None:
    clock = ManualTime()
    pacer = pacer_of(tmp_path, [P1], clock)
    only = worker(tmp_path, 0, P1)
    stop = threading.Event()
    pacer.before_video(only, stop)
    pacer.after_video(only)
    pacer.before_video(only, stop)
    assert pacer.on_blocked(only, blocked()) is True


def test_out_of_budget_everywhere_the_worker_waits_for_the_first_proxy_to_free_up(tmp_path: Path) -> None:
    clock = ManualTime()
    pacer = pacer_of(tmp_path, [P1, P2], clock, budget="1/60s")
    a, b, c = (worker(tmp_path, index, P1) for index in range(3))
    stop = threading.Event()
    pacer.before_video(a, stop)
    pacer.before_video(b, stop)
    pacer.before_video(c, stop)  # both proxies spent: waits until the first use leaves the window
    assert clock.slept and sum(clock.slept) == pytest.approx(60.0, abs=1.0)
    stop.set()
    with pytest.raises(RunStopped):
        pacer.before_video(a, stop)


def test_a_rotating_proxy_is_paced_as_a_pool_and_a_block_only_renews_the_session(tmp_path: Path) -> None:
    clock = ManualTime()
    pacer = pacer_of(tmp_path, [ROTATING], clock, budget="1/60s")
    workers = [worker(tmp_path, index, ROTATING) for index in range(3)]
    stop = threading.Event()
    for each in workers:
        pacer.before_video(each, stop)  # 3 workers: a budget of three IPs, no wait
    assert clock.slept == []
    session = workers[0].session
    assert pacer.on_blocked(workers[0], blocked()) is False
    assert workers[0].session is not session  # a new session: a new IP of the pool
    assert pacer.limiter.cooling_left(egress_key(ROTATING)) == 0.0  # the pool does not cool down
    assert pacer.reputation.record(egress_key(ROTATING)).blocked == pytest.approx(1.0)


def test_move_takes_the_next_proxy_without_blame(tmp_path: Path) -> None:
    clock = ManualTime()
    pacer = pacer_of(tmp_path, [P1, P2], clock)
    first = worker(tmp_path, 0, P2)
    pacer.move(first)
    assert first.egress == P1
    assert pacer.reputation.record(egress_key(P2)).blocked == 0.0


def test_the_mixed_pacer_sends_tor_workers_to_tor_and_proxy_workers_to_the_proxies(tmp_path: Path) -> None:
    clock = ManualTime()
    proxies = pacer_of(tmp_path, [P1], clock)
    tor = RenewingPacer()
    mixed = MixedPacer(tor, proxies)
    on_proxy = worker(tmp_path, 0, P1)
    on_tor = Worker(1, settings=settings(tmp_path), proxy=None, run_id="run1")
    stop = threading.Event()
    mixed.before_video(on_proxy, stop)
    mixed.before_video(on_tor, stop)
    assert (mixed.exit_of(on_proxy), mixed.exit_of(on_tor)) == (egress_key(P1), None)
