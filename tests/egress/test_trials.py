"""Tests for studybuddy.trials: trying unknown exits, and backing off while most are blocked."""

from __future__ import annotations

import pytest

from studybuddy.egress.trials import ExitTrials


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tried(trials: ExitTrials, *outcomes: bool) -> None:
    for number, served in enumerate(outcomes):
        key = f"exit{trials.tried}-{number}"
        assert trials.begin(key)
        trials.record(key, served=served)


def test_the_first_trials_run_freely() -> None:
    trials = ExitTrials(clock=Clock())
    tried(trials, False, False, False)
    assert trials.interval_s() == 0
    assert trials.notice() is None


@pytest.mark.parametrize(
    ("served", "blocked", "interval"),
    [(5, 5, 0), (4, 6, 0.5), (2, 8, 0.5), (1, 9, 0.5), (0, 10, 0.5)],
)
def test_the_run_backs_off_as_a_whole_once_blocks_dominate(
    served: int, blocked: int, interval: float
) -> None:
    clock = Clock()
    trials = ExitTrials(clock=clock)
    for outcome in [True] * served + [False] * blocked:
        clock.now += 1000
        tried(trials, outcome)
    assert trials.interval_s() == interval


@pytest.mark.parametrize(
    ("fruitless", "interval"),
    [(29, 0.5), (30, 1), (34, 1), (35, 2), (40, 4), (65, 128), (70, 256), (99, 300)],
)
def test_the_spacing_doubles_only_once_trials_in_a_row_find_nothing(fruitless: int, interval: float) -> None:
    clock = Clock()
    trials = ExitTrials(clock=clock)
    for _ in range(fruitless):
        clock.now += 1000
        tried(trials, False)
    assert trials.interval_s() == interval


def test_one_trial_that_serves_brings_the_spacing_back_to_the_base() -> None:
    clock = Clock()
    trials = ExitTrials(clock=clock)
    for outcome in [False] * 40 + [True] + [False] * 9:
        clock.now += 1000
        tried(trials, outcome)
    assert trials.interval_s() == 0.5  # 1 of the last 10 served, no long fruitless run


def test_the_notice_says_what_happens_in_plain_words() -> None:
    clock = Clock()
    trials = ExitTrials(clock=clock, free_trials=10)
    for outcome in [True, True] + [False] * 8:
        clock.now += 1000
        tried(trials, outcome)
    assert (
        trials.notice()
        == "YouTube is blocking most exits: 2 of the last 10 served; trying new exits every 0.5 s"
    )
    assert not trials.may_try()
    assert trials.next_try_in() == pytest.approx(0.5)
    assert not trials.begin("another")
    clock.now += 0.5
    assert trials.begin("another")
    for _ in range(40):
        clock.now += 1000
        tried(trials, False)
    assert trials.notice() == (
        "YouTube is blocking most exits: 0 of the last 10 served; trying new exits every 8 s"
    )


def test_only_the_first_answer_through_an_exit_on_trial_counts() -> None:
    trials = ExitTrials(clock=Clock())
    assert trials.begin("x")
    assert trials.is_pending("x")
    trials.record("x", served=True)
    trials.record("x", served=False)  # a later answer through a known exit is not a trial
    trials.record("never-tried", served=False)
    assert (trials.tried, trials.served) == (1, 1)
    assert not trials.is_pending("x")


def test_trials_are_earned_by_videos_served() -> None:
    clock = Clock()
    trials = ExitTrials(clock=clock, free_trials=1)
    tried(trials, False)
    for _ in range(4):
        clock.now += 1000
        tried(trials, False)  # by time: blocks dominate, trials are spaced
    assert not trials.may_try()
    for _ in range(4):
        trials.video_served()
    assert not trials.may_try()
    trials.video_served()  # five videos served earn one trial (at 0.2 a video)
    assert trials.may_try() and trials.next_try_in() == 0
    assert trials.begin("earned")
    assert not trials.may_try()
    assert trials.tried_since_served == 1
