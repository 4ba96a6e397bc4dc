"""End to end on the hostile bed: a private Tor network of 12 exits where the fake YouTube blocks most exits
outright and lets a few serve up to a tolerance the product is never told. The real `study-buddy` command
runs through it as a user runs it."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.bed.hostile import Hostility, make_hostile
from tests.bed.tornet import TorNetwork
from tests.bed.youtube_server import FakeYouTube, Limit
from tests.bed.youtube_site import BLOCK_STYLES as STYLES
from tests.test_e2e_tor import NORMAL, archive, study_buddy

pytestmark = pytest.mark.network


def charges(tmp_path: Path) -> dict[str, float]:
    """How much block each exit carries in the archive's reputation."""
    with sqlite3.connect(tmp_path / "notes" / ".study-buddy.sqlite3") as db:
        return dict(db.execute("SELECT key, blocked FROM exit_reputation"))


def blamed(tmp_path: Path, before: dict[str, float], since: float) -> list[str]:
    """Every exit a run charged with a block: its reputation gained blocks since `before`, or its exit
    events record a block at or after `since`."""
    charged = {fp for fp, blocked in charges(tmp_path).items() if blocked > before.get(fp, 0.0)}
    with sqlite3.connect(tmp_path / "notes" / ".study-buddy.sqlite3") as db:
        charged |= {
            fp
            for (fp,) in db.execute(
                "SELECT fingerprint FROM exit_events WHERE event = 'block' AND at >= ?", (since,)
            )
        }
    return sorted(charged)


def blocked_answers(stats: dict[str, Any]) -> int:
    """Videos the server refused to serve (one per try: the watch page is the first request of a fetch)."""
    return sum(
        1 for _t, _exit, kind, _vid, outcome in stats["timeline"] if kind == "watch" and outcome in STYLES
    )


def run(
    network: TorNetwork, youtube: FakeYouTube, tmp_path: Path, videos: list[str], per_exit: str
) -> list[str]:
    """Run the real command on `videos`; return the exits this run blamed."""
    archive_file = tmp_path / "notes" / ".study-buddy.sqlite3"
    before = charges(tmp_path) if archive_file.exists() else {}
    since = time.time()
    result = study_buddy(
        network,
        youtube,
        tmp_path,
        "--parallel",
        "--workers",
        "4",
        "--per-exit",
        per_exit,
        "--exit-cooldown",
        "60s",
        "--",
        *videos,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return blamed(tmp_path, before, since)


def assert_all_done_and_blame_exact(
    tmp_path: Path, videos: list[str], hostile: Hostility, stats: Any, charged: list[str]
) -> None:
    rows = {row["video_id"]: row for row in archive(tmp_path)}
    assert {vid: rows[vid]["status"] for vid in videos} == dict.fromkeys(videos, "done")  # none given up
    assert hostile.charged_wrongly(charged, stats) == []  # only exits that got a blocked answer


def test_below_tolerance_it_learns_the_good_exits_blames_exactly_and_a_rerun_starts_on_them(
    hostile_network: TorNetwork, hostile_youtube: FakeYouTube, tmp_path: Path
) -> None:
    hostile = make_hostile(
        hostile_youtube, hostile_network.exits, good=3, tolerance=Limit(4, 6.0, 30.0, "cycle"), seed=7
    )
    first = NORMAL[:16]
    charged = run(hostile_network, hostile_youtube, tmp_path, first, per_exit="3/6s")
    stats = hostile_youtube.stats()
    assert_all_done_and_blame_exact(tmp_path, first, hostile, stats, charged)
    good = {info.address for info in hostile.good}
    served = {address for address, record in stats["exits"].items() if record["videos_served"]}
    assert served <= good
    hostile_youtube.reset()
    second = NORMAL[16:26]
    charged = run(hostile_network, hostile_youtube, tmp_path, second, per_exit="3/6s")
    stats = hostile_youtube.stats()  # the server forgot the first run, so only this run's blame counts
    assert_all_done_and_blame_exact(tmp_path, second, hostile, stats, charged)
    assert blocked_answers(stats) <= 1, stats["exits"]  # it starts on the exits it knows to serve


def test_above_tolerance_it_slows_the_good_exits_down_and_every_video_finishes(
    hostile_network: TorNetwork, hostile_youtube: FakeYouTube, tmp_path: Path
) -> None:
    hostile = make_hostile(
        hostile_youtube, hostile_network.exits, good=3, tolerance=Limit(3, 6.0, 10.0, "cycle"), seed=11
    )
    videos = NORMAL[26:42]
    charged = run(hostile_network, hostile_youtube, tmp_path, videos, per_exit="6/6s")
    stats = hostile_youtube.stats()
    assert_all_done_and_blame_exact(tmp_path, videos, hostile, stats, charged)
    with sqlite3.connect(tmp_path / "notes" / ".study-buddy.sqlite3") as db:
        paces = dict(db.execute("SELECT key, pace FROM exit_reputation WHERE served > 0 AND blocked > 0"))
    fingerprints = {info.fingerprint for info in hostile.good}
    assert paces and set(paces) <= fingerprints
    assert all(pace is not None and pace < 6 * 600 for pace in paces.values())  # below the ceiling now
