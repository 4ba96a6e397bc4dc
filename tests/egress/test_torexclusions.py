"""Tests for studybuddy.egress.torexclusions against a stand-in for Tor's ExcludeExitNodes (a real Tor
shared by two processes, one killed with -9, is in test_tor)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studybuddy.egress.torexclusions import (
    MARKER,
    ExitExclusions,
    join_value,
    normalise_fingerprint,
    split_value,
)

A, B, C = "A" * 40, "B" * 40, "C" * 40


class Conf:
    """ExcludeExitNodes as Tor keeps it, with every SETCONF counted."""

    def __init__(self, value: str = "") -> None:
        self.value = value
        self.sets = 0

    def get_excluded(self) -> str:
        return self.value

    def set_excluded(self, value: str) -> None:
        self.value = value
        self.sets += 1


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def exclusions(
    conf: Conf, tmp_path: Path, owner: str, clock: Clock, gone: set[str] | None = None
) -> ExitExclusions:
    dead = gone if gone is not None else set()
    return ExitExclusions(conf, tmp_path / "registry.json", owner, clock=clock, is_gone=dead.__contains__)


def test_values_split_into_the_users_part_and_ours() -> None:
    assert split_value(f"{{us}},$X,{MARKER},${A},{{??}}") == (["{us}", "$X"], [A])
    assert split_value("{us},{??}") == (["{us}", "{??}"], [])
    assert join_value(["{us}"], [B, A]) == f"{{us}},{MARKER},${A},${B}"
    assert join_value(["{us}"], []) == "{us}"
    assert normalise_fingerprint(f"${A.lower()}~nick") == A
    with pytest.raises(ValueError, match="not a relay fingerprint"):
        normalise_fingerprint("{us}")


def test_ours_follow_the_users_value_and_only_changes_are_sent(tmp_path: Path) -> None:
    conf, clock = Conf("{us}"), Clock()
    mine = exclusions(conf, tmp_path, "h:1:a", clock)
    mine.update({A: 60, B: 60})
    assert conf.value == f"{{us}},{MARKER},${A},${B}"
    mine.update({B: 30, A: 90})
    assert conf.sets == 1
    mine.close()
    assert (conf.value, conf.sets) == ("{us}", 2)
    assert not (tmp_path / "registry.json").exists()  # nothing left to remember


def test_a_live_run_keeps_its_exclusions_a_dead_one_loses_them(tmp_path: Path) -> None:
    conf, clock, dead = Conf("{us}"), Clock(), set[str]()
    first = exclusions(conf, tmp_path, "h:1:a", clock, dead)
    second = exclusions(conf, tmp_path, "h:2:b", clock, dead)
    first.update({A: 600})
    second.update({B: 600})
    assert split_value(conf.value) == (["{us}"], [A, B])
    dead.add("h:1:a")  # killed with -9: it never closed
    second.update({B: 600, C: 600})
    assert split_value(conf.value) == (["{us}"], [B, C])
    second.close()
    assert conf.value == "{us}"


def test_entries_after_the_marker_that_no_run_explains_are_stale(tmp_path: Path) -> None:
    conf = Conf(f"{{us}},{MARKER},${A}")  # left by a run killed on another machine
    exclusions(conf, tmp_path, "h:1:a", Clock()).clean()
    assert conf.value == "{us}"


def test_exclusions_shrink_when_their_cool_downs_end(tmp_path: Path) -> None:
    conf, clock = Conf(), Clock()
    mine = exclusions(conf, tmp_path, "h:1:a", clock)
    mine.update({A: 60, B: 600})
    clock.now += 59
    mine.refresh()
    assert split_value(conf.value)[1] == [A, B]
    clock.now += 2
    mine.refresh()
    assert split_value(conf.value)[1] == [B]


def test_never_every_exit_of_the_pool_even_across_runs(tmp_path: Path) -> None:
    conf, clock = Conf(), Clock()
    exclusions(conf, tmp_path, "h:1:a", clock).update({A: 100})
    exclusions(conf, tmp_path, "h:2:b", clock).update({B: 50}, pool=[A, B])
    assert split_value(conf.value)[1] == [A]  # B, the first to cool off, stays allowed


def test_a_damaged_registry_starts_afresh(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "registry.json").write_text("{not json")
    conf = Conf(f"{MARKER},${A}")
    exclusions(conf, tmp_path, "h:1:a", Clock()).update({B: 60})
    assert split_value(conf.value)[1] == [B]
    assert "unreadable exclusion registry" in caplog.text
    assert json.loads((tmp_path / "registry.json").read_text())["owners"]["h:1:a"] == {B: 1_700_000_060.0}
