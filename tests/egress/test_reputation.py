"""Tests for studybuddy.reputation: standing from faded evidence, AIMD pace, cool-downs, the store."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from studybuddy.egress.reputation import PacePolicy, Reputation
from studybuddy.store.archive import Archive
from studybuddy.store.exit_records import HALF_LIFE_S, ExitRecord, Outcome, Standing
from studybuddy.units import ExitBudget

A, B = "A" * 40, "B" * 40
POLICY = PacePolicy(ExitBudget(8, 600.0), cooldown_s=1800.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_an_exit_nobody_knows_is_unknown_and_gets_the_whole_ceiling() -> None:
    reputation = Reputation(POLICY, clock=Clock())
    assert reputation.standing(A) is Standing.UNKNOWN
    limits = reputation.limits(A)
    assert (limits.count, limits.interval_s) == (8, 0.0)  # the user's budget and interval, as given


def test_standing_follows_the_evidence() -> None:
    reputation = Reputation(POLICY, clock=Clock())
    reputation.blocked(A)
    assert reputation.standing(A) is Standing.BAD
    reputation.served(B)
    reputation.served(B)
    reputation.blocked(B)
    assert reputation.standing(B) is Standing.GOOD  # served more than it blocked


def test_old_evidence_fades_so_a_blocked_exit_is_tried_again_some_day() -> None:
    clock = Clock()
    reputation = Reputation(POLICY, clock=clock)
    reputation.blocked(A)
    clock.now += HALF_LIFE_S
    assert reputation.record(A).blocked == pytest.approx(0.5)
    assert reputation.standing(A) is Standing.BAD
    clock.now += 2 * HALF_LIFE_S
    assert reputation.standing(A) is Standing.UNKNOWN  # a week later: worth a try again


def test_unreachable_is_counted_apart_and_blames_nobody() -> None:
    reputation = Reputation(POLICY, clock=Clock())
    reputation.unreachable(A)
    record = reputation.record(A)
    assert (record.unreachable, record.blocked, record.last_outcome) == (1.0, 0.0, Outcome.UNREACHABLE)
    assert reputation.standing(A) is Standing.UNKNOWN


def test_a_serving_exit_is_slowed_by_half_and_never_blocked_twice_at_the_same_pace() -> None:
    clock = Clock()
    reputation = Reputation(POLICY, clock=clock)
    for _ in range(3):
        reputation.served(A)
    reputation.blocked(A)  # at the ceiling, 8 per 10 minutes
    record = reputation.record(A)
    assert record.pace == pytest.approx(24.0)  # 4 per 10 minutes
    assert record.pace_limit == pytest.approx(42.0)  # climbs back to 7 per 10 minutes at most
    limits = reputation.limits(A)
    assert (limits.count, limits.interval_s) == (4, pytest.approx(150.0))  # spread evenly
    rates = [POLICY.rate(reputation.record(A))]
    for _ in range(50):
        reputation.served(A)
        rates.append(POLICY.rate(reputation.record(A)))
    assert rates == sorted(rates)
    assert rates[-1] == pytest.approx(48.0)  # back at the ceiling: the cap rose after a long clean run
    clock.now += 301  # the first cool-down is over
    reputation.blocked(A)
    assert POLICY.rate(reputation.record(A)) == pytest.approx(24.0)


def test_cool_downs_short_for_a_serving_exit_doubling_long_for_one_that_never_served() -> None:
    clock = Clock()
    reputation = Reputation(POLICY, clock=clock)
    reputation.served(A)
    cooldowns = []
    for _ in range(5):
        cooldowns.append(reputation.blocked(A))
        clock.now += cooldowns[-1]  # each block comes once the cool-down before it is over
    assert cooldowns == [300.0, 600.0, 1200.0, 1800.0, 1800.0]
    assert reputation.blocked(B) == 1800.0
    assert set(reputation.cooling()) == {B}  # A's last cool-down is over already


def test_a_block_after_a_cool_down_with_nothing_served_since_lengthens_the_cool_down_not_the_pace() -> None:
    clock = Clock()
    reputation = Reputation(POLICY, clock=clock)
    reputation.served(A)
    clock.now += reputation.blocked(A)  # 300 s: YouTube's spell lasts longer than that
    assert reputation.blocked(A) == 600.0
    assert reputation.record(A).pace == pytest.approx(24.0)  # halved once, for the one spell
    clock.now += 600
    reputation.served(A)
    reputation.blocked(A)  # blocked again after serving at that pace: slower still
    assert reputation.record(A).pace == pytest.approx(12.0)


def test_answers_of_one_blocking_spell_count_once_for_pace_and_cool_down() -> None:
    clock = Clock()
    reputation = Reputation(POLICY, clock=clock)
    reputation.served(A)
    assert reputation.blocked(A) == 300.0
    clock.now += 1
    assert reputation.blocked(A) == 299.0  # a second worker's answer from the same spell
    record = reputation.record(A)
    assert (round(record.blocked, 3), record.blocks_in_row) == (2.0, 1)
    assert record.pace == pytest.approx(24.0)


def test_ranked_puts_serving_exits_first_and_blocked_ones_last() -> None:
    reputation = Reputation(POLICY, clock=Clock())
    reputation.blocked(A)
    reputation.served(B)
    assert [record.key for record in reputation.ranked()] == [B, A]


def test_the_archive_keeps_reputation_across_runs_and_runs_never_lose_each_others(tmp_path: Path) -> None:
    clock = Clock()
    with Archive.open(tmp_path) as first, Archive.open(tmp_path) as second:
        one = Reputation(POLICY, store=first, clock=clock)
        two = Reputation(POLICY, store=second, clock=clock)
        threads = [threading.Thread(target=rep.served, args=(A,)) for rep in (one, two) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        one.blocked(B)
    with Archive.open(tmp_path) as archive:
        later = Reputation(POLICY, store=archive, clock=clock)
        assert later.record(A).served == pytest.approx(20.0)
        assert later.standing(B) is Standing.BAD
        assert later.cooling() == {B: pytest.approx(1800.0)}


def test_records_round_trip_through_the_archive(tmp_path: Path) -> None:
    record = ExitRecord(A, 2.5, 1.0, 0.5, Outcome.BLOCKED, 12.0, 30.0, 40.0, 3, 1, 99.0, 10.0)
    with Archive.open(tmp_path) as archive:
        archive.update_exit_record(A, lambda _stored: record)
        assert archive.exit_records() == [record]
