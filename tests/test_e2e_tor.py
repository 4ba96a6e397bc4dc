"""End to end through a real Tor: the private network of the test bed, the fake HTTPS YouTube on the exits'
addresses, the fake Anthropic API, and the `study-buddy` command run as a user runs it (a subprocess)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest
import stem.control

from studybuddy.errors import ErrorKind
from studybuddy.store.archive import Archive
from tests.bed.tornet import TorNetwork, exit_server_address
from tests.bed.youtube_server import FakeYouTube, Limit
from tests.bed.youtube_site import BLOCK_STYLES, load_catalogue
from tests.fakes.anthropic_server import API_KEY, MODEL, FakeAnthropic
from tests.notecheck import front_matter

pytestmark = pytest.mark.network
CLI = str(Path(sys.executable).parent / "study-buddy")
CATALOGUE = load_catalogue()
NORMAL = [vid for vid, entry in CATALOGUE.items() if entry.case == "normal"]
SPECIAL = {entry.case: vid for vid, entry in CATALOGUE.items() if entry.case != "normal"}
PERMANENT_CASES = ("transcripts_disabled", "unavailable", "age_restricted", "po_token_required")


def study_buddy(
    tor_network: TorNetwork,
    youtube: FakeYouTube,
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 240,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        env=cli_env(tor_network, youtube, tmp_path, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_env(
    tor_network: TorNetwork, youtube: FakeYouTube, tmp_path: Path, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDY_BUDDY_", "ANTHROPIC_"))}
    env.update(
        {
            "STUDY_BUDDY_TOR": "system",
            "STUDY_BUDDY_TOR_SOCKS": f"{tor_network.socks[0]}:{tor_network.socks[1]}",
            "STUDY_BUDDY_TOR_CONTROL": f"{tor_network.control[0]}:{tor_network.control[1]}",
            "STUDY_BUDDY_CA_BUNDLE": youtube.ca_bundle,
            "STUDY_BUDDY_OUTPUT": str(tmp_path / "notes"),
            "STUDY_BUDDY_NOTES": "false",
            "STUDY_BUDDY_EXIT_INTERVAL": "0s",
        }
    )
    env.update(extra or {})
    return env


def archive(tmp_path: Path) -> list[dict[str, object]]:
    with sqlite3.connect(tmp_path / "notes" / ".study-buddy.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM videos ORDER BY video_id")]


def test_parallel_run_through_tor_gives_each_worker_its_own_circuit(
    tor_network: TorNetwork, fake_youtube: FakeYouTube, fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    videos = NORMAL[:12]
    result = study_buddy(
        tor_network,
        fake_youtube,
        tmp_path,
        "--parallel",
        "--workers",
        "4",
        "--notes",
        "--model",
        MODEL,
        "--per-exit",
        "4/2m",  # 12 videos need at least three exits
        "--",
        *videos,
        env={"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake_anthropic.url},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = archive(tmp_path)
    assert [row["status"] for row in rows] == ["done"] * 12
    exits = {row["exit_fingerprint"] for row in rows}
    assert exits <= {info.fingerprint for info in tor_network.exits}
    stats = fake_youtube.stats()
    served = {address for address, exit_stats in stats["exits"].items() if exit_stats["videos_served"]}
    assert len(served) >= 3
    assert_budget_kept(stats, budget=4, window_s=120.0)
    # DNS and traffic never leave Tor: connections arrive only on the addresses the exits' own DNS servers
    # give out (a local lookup of www.youtube.com could never yield them), and those servers were asked
    assert {entry["local"] for entry in stats["connections"]} <= {info.address for info in tor_network.exits}
    assert sum(len(dns.queries) for dns in tor_network.dns_servers) >= 3
    for path in (tmp_path / "notes").glob("*.md"):
        if not path.name.endswith(".transcript.md"):
            front = front_matter(path.read_text())
            assert front["video_id"] in videos
    assert API_KEY not in (tmp_path / "notes" / ".study-buddy.sqlite3").read_bytes().decode("latin-1")


def test_blocked_exits_cool_down_renew_and_every_video_still_gets_its_note(
    tor_network: TorNetwork, fake_youtube: FakeYouTube, tmp_path: Path
) -> None:
    fake_youtube.configure(limit=Limit(videos=3, window=8.0, block_for=6.0, style="cycle"))
    normal = NORMAL[12:38]
    permanent = [SPECIAL[case] for case in PERMANENT_CASES]
    budget, window = 4, 8.0
    result = study_buddy(
        tor_network,
        fake_youtube,
        tmp_path,
        "--parallel",
        "--workers",
        "4",
        "--per-exit",
        f"{budget}/{window:g}s",
        "--exit-cooldown",
        "6s",
        "--max-rotations",
        "10",
        "--",  # ids may start with "-"
        *normal,
        *permanent,
        timeout=300,
    )
    rows = {row["video_id"]: row for row in archive(tmp_path)}
    assert result.returncode == 1, result.stdout + result.stderr  # the permanent cases failed
    assert {vid for vid, row in rows.items() if row["status"] == "done"} == set(normal)
    assert {vid: rows[vid]["error_kind"] for vid in permanent} == dict.fromkeys(permanent, "permanent")
    stats = fake_youtube.stats()
    blocked_exits = {address for address, s in stats["exits"].items() if sum(s["blocks"].values())}
    assert len(blocked_exits) >= 3, stats["exits"]  # the limits were low enough to block exits
    assert set(stats["videos"]) == set(normal) and set(stats["videos"].values()) == {1}  # never fetched twice
    answered = Counter(
        vid for _t, _exit, kind, vid, outcome in stats["timeline"] if kind == "watch" and outcome == "ok"
    )
    refused = Counter(vid for _t, _exit, _kind, vid, outcome in stats["timeline"] if outcome in BLOCK_STYLES)
    # permanent failures are never retried: a video is fetched again only when a request of its was blocked
    # (yt-dlp's try after "transcripts disabled" or "PO token required" may meet a block)
    assert all(answered[vid] <= 1 + refused[vid] for vid in permanent), (answered, refused)
    notes = [p for p in (tmp_path / "notes").glob("*.md") if not p.name.endswith(".transcript.md")]
    assert len(notes) == len(normal)  # no note written twice
    assert_budget_kept(stats, budget=budget, window_s=window)


def test_a_geo_blocked_video_is_tried_once_more_through_another_circuit_and_no_exit_is_blamed(
    tor_network: TorNetwork, fake_youtube: FakeYouTube, tmp_path: Path
) -> None:
    everywhere = next(
        vid for vid, entry in CATALOGUE.items() if entry.case == "geo_blocked" and not entry.blocked_on
    )
    result = study_buddy(tor_network, fake_youtube, tmp_path, "--", everywhere, NORMAL[0])
    assert result.returncode == 1, result.stdout + result.stderr
    rows = {row["video_id"]: row for row in archive(tmp_path)}
    assert rows[NORMAL[0]]["status"] == "done"
    assert (rows[everywhere]["status"], rows[everywhere]["error_kind"]) == ("failed", "permanent")
    assert "The uploader has not made this video available in your country" in str(rows[everywhere]["error"])
    players = [t for t in fake_youtube.stats()["timeline"] if t[2] == "player" and t[3] == everywhere]
    assert len(players) == 2, players  # one more try, only one
    with sqlite3.connect(tmp_path / "notes" / ".study-buddy.sqlite3") as db:
        blocks = db.execute("SELECT COUNT(*) FROM exit_events WHERE event = 'block'").fetchone()[0]
    assert blocks == 0  # no exit cooled down for it


def assert_budget_kept(stats: dict[str, Any], *, budget: int, window_s: float, slack_s: float = 0.5) -> None:
    """No exit served more videos in any sliding window than the budget, on the server's own clock (less
    `slack_s`: the client counts a use when it decides, the server when the request arrives)."""
    served = sorted(
        (t, exit_)
        for t, exit_, kind, _vid, outcome in stats["timeline"]
        if kind == "watch" and outcome == "ok"
    )
    for t, exit_ in served:
        in_window = [u for u, e in served if e == exit_ and t - (window_s - slack_s) < u <= t]
        assert len(in_window) <= budget, (exit_, t, in_window)


def note_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "notes").glob("*.md") if not p.name.endswith(".transcript.md")]


def assert_consistent(tmp_path: Path, expected_done: set[str] | None = None) -> None:
    """Every note complete, one per video, and the archive agrees with the files."""
    owners: Counter[str] = Counter()
    for path in note_files(tmp_path):
        text = path.read_text()
        front = front_matter(text)
        assert text.endswith("\n") and ("## Transcript" in text or "read the transcript" in text), path
        owners[front["video_id"]] += 1
    assert all(count == 1 for count in owners.values()), owners
    rows = archive(tmp_path)
    done = {row["video_id"] for row in rows if row["status"] == "done"}
    assert done <= set(owners)  # a done row always has its note
    for row in rows:
        if row["status"] == "done":
            assert (tmp_path / "notes" / str(row["note_path"])).is_file()
    if expected_done is not None:
        assert done == expected_done == set(owners)


def test_kill_9_at_random_moments_then_a_rerun_finishes_cleanly(
    tor_network: TorNetwork, fake_youtube: FakeYouTube, tmp_path: Path
) -> None:
    fake_youtube.configure(latency=0.05)
    videos = NORMAL[:20]
    args = [CLI, "--parallel", "--workers", "3", "--per-exit", "100/1m", "--", *videos]
    env = cli_env(tor_network, fake_youtube, tmp_path)
    rng = random.Random(20261124)
    for _ in range(20):  # kill -9 at random points over 20 runs
        process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.6))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        if (tmp_path / "notes" / ".study-buddy.sqlite3").exists():
            assert_consistent(tmp_path)
    done_before = {row["video_id"] for row in archive(tmp_path) if row["status"] == "done"}
    fake_youtube.reset()
    final = study_buddy(
        tor_network, fake_youtube, tmp_path, "--parallel", "--per-exit", "100/1m", "--", *videos
    )
    assert final.returncode == 0, final.stdout + final.stderr
    assert_consistent(tmp_path, expected_done=set(videos))
    assert not set(fake_youtube.stats()["videos"]) & done_before  # a done video is never fetched again


def exclude_exit_nodes(controller: stem.control.Controller) -> str:
    return str(controller.get_conf("ExcludeExitNodes", "") or "")


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    """Poll `condition` while `process` runs (it must not end first), for at most two minutes."""
    deadline = time.monotonic() + 120
    while not condition():
        assert process.poll() is None, f"the run ended before {what}: {process.communicate()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def stopped_by_sigterm(process: subprocess.Popen[str], when: Callable[[], bool]) -> tuple[str, str]:
    """Send SIGTERM (what `docker stop` sends) once `when()` holds; the run's stdout and stderr."""
    try:
        wait_for(when, process, "the moment to stop it")
        process.send_signal(signal.SIGTERM)
        return process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def assert_stopped_cleanly(process: subprocess.Popen[str], stdout: str, stderr: str, tmp_path: Path) -> None:
    """Exit 130 like Ctrl-C, one line and no traceback, every claim released, the archive agrees with
    the files."""
    assert process.returncode == 130, stdout + stderr
    assert "Interrupted: finished videos are saved" in stderr and "Traceback" not in stdout + stderr
    assert [row["video_id"] for row in archive(tmp_path) if row["claimed_by"] is not None] == []
    assert_consistent(tmp_path)


def test_sigterm_stops_a_run_like_ctrl_c_and_restores_tor(
    tor_network: TorNetwork, fake_youtube: FakeYouTube, tmp_path: Path
) -> None:
    # exit 1 blocks at once (the run excludes it from new circuits), and 2 videos per exit in 10 minutes
    # leave the others too few for the 12 videos: the run is stopped halfway, whatever Tor's circuits are
    blocking = Limit(videos=0, window=600.0, block_for=600.0, style="http_429")
    fake_youtube.configure(latency=0.2, exit_limits={exit_server_address(1): blocking})
    observer = stem.control.Controller.from_port(*tor_network.control)
    observer.authenticate()
    observer.set_caching(False)
    users_value = exclude_exit_nodes(observer)
    videos = NORMAL[:12]
    args = ["--parallel", "--workers", "3", "--per-exit", "2/10m", "--exit-cooldown", "10m", "--", *videos]
    process = subprocess.Popen(
        [CLI, *args], env=cli_env(tor_network, fake_youtube, tmp_path), stdout=PIPE, stderr=PIPE, text=True
    )
    try:
        stdout, stderr = stopped_by_sigterm(
            process, lambda: _done_count(tmp_path) >= 1 and exclude_exit_nodes(observer) != users_value
        )
        left_behind = exclude_exit_nodes(observer)
    finally:
        observer.set_conf("ExcludeExitNodes", users_value)  # whatever happened, the bed's Tor is reset
        observer.close()
    assert_stopped_cleanly(process, stdout, stderr, tmp_path)
    assert left_behind == users_value  # the run put Tor back as it found it
    rows = archive(tmp_path)
    assert {row["status"] for row in rows} <= {"done", "running"}, rows  # nothing failed for the stop
    assert len([row for row in rows if row["status"] == "done"]) < len(videos)  # it stopped mid-run


def test_sigterm_stops_archive_retry_like_ctrl_c(
    tor_network: TorNetwork, fake_youtube: FakeYouTube, tmp_path: Path
) -> None:
    videos = NORMAL[:12]
    with Archive.open(tmp_path / "notes") as seeded:
        for video_id in videos:
            seeded.record_failed(video_id, ErrorKind.TRANSIENT, "seeded failure", retry_delay=lambda n: 60.0)
    fake_youtube.configure(latency=0.2)
    process = subprocess.Popen(  # one video per exit in 10 minutes: it cannot finish before it is stopped
        [CLI, "archive", "retry", "--parallel", "--workers", "2", "--per-exit", "1/10m"],
        env=cli_env(tor_network, fake_youtube, tmp_path),
        stdout=PIPE,
        stderr=PIPE,
        text=True,
    )
    stdout, stderr = stopped_by_sigterm(process, lambda: _done_count(tmp_path) >= 2)
    assert_stopped_cleanly(process, stdout, stderr, tmp_path)
    rows = archive(tmp_path)
    done = [row for row in rows if row["status"] == "done"]
    assert 2 <= len(done) < len(videos)
    for row in rows:  # the rest keep their old failure or were left running: none failed for the stop
        assert row["status"] in ("done", "running") or row["error"] == "seeded failure", row


def test_embedded_tor_joins_the_network_and_its_death_stops_the_run_cleanly(
    tor_network: TorNetwork, fake_youtube: FakeYouTube, tmp_path: Path
) -> None:
    pid_file = tmp_path / "embedded-tor.pid"
    torrc = tmp_path / "bed.torrc"
    torrc.write_text("\n".join([*tor_network.relay_torrc_lines(), f"PidFile {pid_file}"]) + "\n")
    fake_youtube.configure(latency=0.1)
    videos = NORMAL[:16]
    env = cli_env(
        tor_network,
        fake_youtube,
        tmp_path,
        {
            "STUDY_BUDDY_TOR": "embedded",
            "STUDY_BUDDY_TOR_CONFIG": str(torrc),
            "XDG_CACHE_HOME": str(tmp_path),
        },
    )
    process = subprocess.Popen(
        [CLI, "--workers", "2", "--parallel", "--per-exit", "50/1m", "--", *videos],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _done_count(tmp_path) >= 2:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.2)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, stdout + stderr
    assert "Stopped early: Tor" in stdout, stdout + stderr
    assert "Traceback" not in stdout + stderr
    rows = archive(tmp_path)
    assert {row["status"] for row in rows} <= {"done", "running"}, rows  # nothing failed for Tor dying
    assert_consistent(tmp_path)
    rerun = subprocess.run(
        [CLI, "--parallel", "--per-exit", "50/1m", "--", *videos],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "Tor bootstrap 100%" in rerun.stderr
    assert_consistent(tmp_path, expected_done=set(videos))


def _done_count(tmp_path: Path) -> int:
    if not (tmp_path / "notes" / ".study-buddy.sqlite3").exists():
        return 0
    try:
        return sum(1 for row in archive(tmp_path) if row["status"] == "done")
    except sqlite3.OperationalError:
        return 0
