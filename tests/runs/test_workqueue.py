"""Tests for studybuddy.workqueue: `enqueue` and `work` processes sharing one PostgreSQL queue, against the
bed's fake YouTube through its SOCKS proxy (no Tor), notes from the offline engine into one shared folder."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from studybuddy.store.archive import Archive
from tests.bed.proxies import ProxyBed
from tests.bed.youtube_server import FakeYouTube
from tests.bed.youtube_site import load_catalogue, site_lists
from tests.pg_fixtures import PASSWORD, PostgresServer
from tests.test_e2e_tor import CLI, NORMAL
from tests.test_e2e_watch import GONE_PLAYLIST

UNKNOWN = [f"zzUnknwn{i:03d}" for i in range(156)]  # the fake site has no such video: unavailable


def cli_env(youtube: FakeYouTube, tmp_path: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDY_BUDDY_", "ANTHROPIC_"))}
    env |= {"STUDY_BUDDY_CA_BUNDLE": youtube.ca_bundle, "STUDY_BUDDY_OUTPUT": str(tmp_path / "notes")}
    env |= {"STUDY_BUDDY_TOR": "off", "STUDY_BUDDY_ENGINE": "offline", "STUDY_BUDDY_ARCHIVE": url}
    env |= {"STUDY_BUDDY_PER_EXIT": "1000/1m", "STUDY_BUDDY_EXIT_INTERVAL": "0s"}  # pacing is not tested here
    return env


def finished(url: str) -> int:
    with psycopg.connect(url) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM videos WHERE status IN ('done', 'failed')").fetchone()
    return int(count)


def test_four_workers_on_one_queue_with_one_killed_do_every_video_once(
    fake_youtube: FakeYouTube, fake_proxies: ProxyBed, tmp_path: Path, fresh_database: Callable[[], str]
) -> None:
    url = fresh_database()
    env = cli_env(fake_youtube, tmp_path, url)
    videos = [*NORMAL, *UNKNOWN]
    assert len(videos) == 200
    queued = subprocess.run(
        [CLI, "enqueue", "--", *videos], env=env, capture_output=True, text=True, check=False
    )
    assert queued.returncode == 0, queued.stderr
    assert "200 video(s) queued" in queued.stdout
    args = [CLI, "work", "--parallel", "--workers", "2", "--claim-ttl", "4s", "--poll", "1s"]
    args += ["--proxy", fake_proxies.socks.url()]
    workers = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    midway = threading.Event()
    for _ in range(600):  # until a quarter is finished (bounded: 600 looks)
        if finished(url) >= 50 or midway.wait(0.2):
            break
    victim = workers[0]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    outputs = [worker.communicate(timeout=300) for worker in workers[1:]]
    assert [worker.returncode for worker in workers[1:]] == [1, 1, 1], outputs  # the unknown videos failed

    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT video_id, status, error_kind, note_path, claimed_by FROM videos ORDER BY video_id"
        ).fetchall()
    assert len(rows) == 200
    by_id = {row[0]: row for row in rows}
    assert {vid for vid, row in by_id.items() if row[1] == "done"} == set(NORMAL)
    assert all(by_id[vid][1:3] == ("failed", "permanent") for vid in UNKNOWN)
    assert all(row[4] is None for row in rows)  # every claim released or taken over
    notes = sorted(
        path.relative_to(tmp_path / "notes").as_posix()
        for path in (tmp_path / "notes").rglob("*.md")
        if not path.name.endswith(".transcript.md")
        and not path.relative_to(tmp_path / "notes").parts[0].startswith(".")
    )
    recorded = sorted(str(by_id[vid][3]) for vid in NORMAL)
    assert notes == recorded  # one note per done video, none twice, each where the archive says
    stats = fake_youtube.stats()
    assert not set(fake_youtube.addresses) & {
        a for a, d in stats["exits"].items() if any(d["requests"].values())
    }


def test_enqueue_lists_playlists_and_channels_as_a_run_does_with_one_line_per_bad_input(
    fake_youtube: FakeYouTube, fake_proxies: ProxyBed, tmp_path: Path, fresh_database: Callable[[], str]
) -> None:
    url = fresh_database()
    env = cli_env(fake_youtube, tmp_path, url)
    lists = site_lists(load_catalogue()).by_path
    course = [v.video_id for v in lists["/playlist?list=PLstudybuddyCourse0000000000000001"].videos]
    holes = lists["/playlist?list=PLstudybuddyHoles0000000000000001"].videos
    channel = [v.video_id for v in lists["/@drstudy/videos"].videos]
    playable = [v.video_id for v in holes if not v.unavailable]
    args = ["https://www.youtube.com/playlist?list=PLstudybuddyCourse0000000000000001", course[0]]
    args += ["https://www.youtube.com/playlist?list=PLstudybuddyHoles0000000000000001"]
    args += ["https://www.youtube.com/@drstudy", "https://example.com/not-youtube", GONE_PLAYLIST]
    queued = subprocess.run(
        [CLI, "enqueue", "--proxy", fake_proxies.socks.url(), "--", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    expected = set(course) | set(playable) | set(channel)
    assert queued.returncode == 1, queued  # two inputs could not be used; the rest is queued
    assert f"{len(expected)} video(s) queued, 0 already in the archive, 2 listed as private or deleted" in (
        queued.stdout
    )
    errors = queued.stderr.splitlines()
    assert len(errors) == 2, errors  # one line each: the URL that is not YouTube's, the gone playlist
    assert "argument 5" in errors[0] and "example.com" in errors[0]
    assert GONE_PLAYLIST in errors[1] and "Traceback" not in queued.stderr
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT video_id, status FROM videos").fetchall()
    assert sorted(rows) == sorted((vid, "queued") for vid in expected)
    stats = fake_youtube.stats()  # listed through the proxy, never directly
    assert not set(fake_youtube.addresses) & {
        a for a, d in stats["exits"].items() if any(d["requests"].values())
    }

    again = subprocess.run(
        [CLI, "enqueue", "--proxy", fake_proxies.socks.url(), "--", "https://www.youtube.com/@drstudy"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 0, again
    assert f"0 video(s) queued, {len(channel)} already in the archive." in again.stdout


def test_two_watchers_on_two_machines_share_the_archive_and_do_each_video_once(
    fake_youtube: FakeYouTube, fake_proxies: ProxyBed, tmp_path: Path, fresh_database: Callable[[], str]
) -> None:
    url = fresh_database()
    env = cli_env(fake_youtube, tmp_path, url)
    videos = NORMAL[:12]
    machines = [fake_proxies.socks.url(), fake_proxies.http.url()]  # each "machine" its own egress
    Archive.open(tmp_path / "notes", url).close()  # the schema, for the test's own queries
    watchers = [
        subprocess.Popen(
            [
                CLI,
                "watch",
                "--interval",
                "1h",
                "--parallel",
                "--workers",
                "2",
                "--proxy",
                proxy,
                "--",
                *videos,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for proxy in machines
    ]
    waited = threading.Event()
    for _ in range(900):  # until every video is done (bounded: 900 looks)
        if done_count(url) == len(videos) or waited.wait(0.2):
            break
    for watcher in watchers:
        watcher.send_signal(signal.SIGTERM)
    outputs = [watcher.communicate(timeout=120) for watcher in watchers]
    assert [watcher.returncode for watcher in watchers] == [0, 0], outputs
    assert all("Watch stopped: 1 check(s) run" in out + err for out, err in outputs), outputs

    with psycopg.connect(url) as db:
        rows = db.execute("SELECT video_id, status, attempts, note_path FROM videos").fetchall()
    assert sorted((vid, status, attempts) for vid, status, attempts, _ in rows) == [
        (vid, "done", 1) for vid in sorted(videos)
    ]  # each video processed once, by one of the two
    notes = [p for p in (tmp_path / "notes").rglob("*.md") if not p.name.endswith(".transcript.md")]
    assert sorted(p.relative_to(tmp_path / "notes").as_posix() for p in notes) == sorted(r[3] for r in rows)


def done_count(url: str) -> int:
    with psycopg.connect(url) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM videos WHERE status = 'done'").fetchone()
    return int(count)


def test_a_worker_that_loses_the_archive_mid_run_pauses_reconnects_and_does_every_video_once(
    fake_youtube: FakeYouTube,
    fake_proxies: ProxyBed,
    tmp_path: Path,
    postgres_server: PostgresServer,
    fresh_database: Callable[[], str],
) -> None:
    url = fresh_database()
    database = urlsplit(url).path.lstrip("/")
    env = cli_env(fake_youtube, tmp_path, url)
    videos = NORMAL[:16]
    fake_youtube.configure(latency=0.2)  # videos are in flight when the server goes away
    queued = subprocess.run(
        [CLI, "enqueue", "--", *videos], env=env, capture_output=True, text=True, check=False
    )
    assert queued.returncode == 0, queued.stderr
    args = [
        CLI,
        "work",
        "--parallel",
        "--workers",
        "2",
        "--claim-ttl",
        "3s",
        "--poll",
        "1s",
        "--log-level",
        "info",
    ]
    worker = subprocess.Popen(
        [*args, "--proxy", fake_proxies.socks.url()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    tried_again = threading.Event()  # the worker found the archive still gone after its first pause

    def read_stderr() -> None:
        assert worker.stderr is not None
        for line in worker.stderr:
            lines.append(line.rstrip("\n"))
            if "try 2 failed, trying again in" in line:
                tried_again.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    waited = threading.Event()
    for _ in range(600):  # until a few are done (bounded: 600 looks)
        if done_count(url) >= 3 or waited.wait(0.1):
            break
    with psycopg.connect(postgres_server.url(), autocommit=True) as admin:  # the database goes away
        admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,)
        )
        try:
            assert tried_again.wait(180), lines
        finally:
            admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')  # ... and it is back
    stdout, _ = worker.communicate(timeout=300)
    reader.join(timeout=30)
    assert worker.returncode == 0, (stdout, lines)
    told = [line for line in lines if "(and with backoff after that)" in line]
    assert len(told) == 1, lines  # one line for the user, however many tries it took
    assert told[0].startswith(
        f"postgresql://studybuddy:***@127.0.0.1:{postgres_server.port}/{database}: cannot"
    )
    assert not [line for line in lines if "Traceback" in line or "psycopg" in line or PASSWORD in line], lines

    with psycopg.connect(url) as db:
        rows = db.execute("SELECT video_id, status, note_path, claimed_by FROM videos").fetchall()
    assert sorted((vid, status, claimed_by) for vid, status, _, claimed_by in rows) == [
        (vid, "done", None) for vid in sorted(videos)
    ]  # nothing marked failed, every claim released
    notes = sorted(
        path.relative_to(tmp_path / "notes").as_posix()
        for path in (tmp_path / "notes").rglob("*.md")
        if not path.name.endswith(".transcript.md")
    )
    assert notes == sorted(str(note_path) for _, _, note_path, _ in rows)  # one note per video, none twice
