"""End to end without Tor: runs through the bed's proxies (SOCKS5, HTTP and HTTPS CONNECT with credentials,
a rotating one) to the fake YouTube, with the bad input a user may give them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from studybuddy.proxyspec import egress_key, parse_proxy
from tests.bed.proxies import ProxyBed
from tests.bed.tornet import TorNetwork
from tests.bed.youtube_server import FakeYouTube, Limit
from tests.test_e2e_tor import CLI, NORMAL, archive, study_buddy
from tests.test_e2e_ytdlp import assert_video_budget_kept


def run(youtube: FakeYouTube, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDY_BUDDY_", "ANTHROPIC_"))}
    env |= {"STUDY_BUDDY_CA_BUNDLE": youtube.ca_bundle, "STUDY_BUDDY_OUTPUT": str(tmp_path / "notes")}
    env |= {"STUDY_BUDDY_NOTES": "false", "STUDY_BUDDY_TOR": "off"}  # never a Tor: proxies only
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=240, check=False)


def test_proxies_from_a_file_with_a_bad_line_and_a_dead_proxy_the_others_still_run(
    fake_youtube: FakeYouTube, fake_proxies: ProxyBed, tmp_path: Path
) -> None:
    proxy_file = tmp_path / "proxies.txt"
    proxy_file.write_text(
        "# the bed's proxies\n"
        f"{fake_proxies.socks.url()}\n"
        f"{fake_proxies.http.url()}\n"
        "http://carol:hunter2@127.0.0.1:99999\n"
        f"{fake_proxies.https.url()}\n"
        f"{fake_proxies.rotating.url()} rotating\n"
        f"{fake_proxies.http.url(credentials=('alice', 'wrong-password'))}\n"
    )
    videos = NORMAL[:8]
    args = ["--parallel", "--workers", "4", "--proxy-file", str(proxy_file), "--debug", "--", *videos]
    result = run(fake_youtube, tmp_path, *args)  # --debug: every log line is checked for secrets too
    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # the bad line; every video is done
    assert f"{proxy_file}:4: bad port" in output and "hunter2" not in output
    assert "refused the credentials (HTTP 407); this proxy is dropped" in output
    assert "wrong-password" not in output and "s3cret" not in output and "r0tate" not in output
    assert {row["video_id"] for row in archive(tmp_path) if row["status"] == "done"} == set(videos)
    assert "s3cret" not in (tmp_path / "notes" / ".study-buddy.sqlite3").read_bytes().decode("latin-1")
    stats = fake_youtube.stats()
    used = {address for address, data in stats["exits"].items() if any(data["requests"].values())}
    sources = {*fake_proxies.socks.sources, *fake_proxies.http.sources, *fake_proxies.https.sources}
    sources |= set(fake_proxies.rotating.sources)
    assert used <= sources and len(used & {"127.0.0.21", "127.0.0.22", "127.0.0.23"}) == 3  # all four worked
    assert used & set(fake_proxies.rotating.sources)
    assert not set(fake_youtube.addresses) & used  # nothing through Tor's exits
    assert fake_proxies.http.auth_failures == 1  # the check; the run never used the refused credentials


def test_egress_proxies_without_any_proxy_fails_before_any_work(
    fake_youtube: FakeYouTube, tmp_path: Path
) -> None:
    missing = run(fake_youtube, tmp_path, "--egress", "proxies", NORMAL[0])
    assert missing.returncode == 1
    assert "--egress proxies: no proxy given" in missing.stderr
    assert fake_youtube.stats()["timeline"] == []


@pytest.mark.network
def test_a_mixed_pool_of_tor_and_three_proxies_one_blocked_finishes_within_every_budget(
    tor_network: TorNetwork, fake_youtube: FakeYouTube, fake_proxies: ProxyBed, tmp_path: Path
) -> None:
    """Tor and three proxies in one run: the proxy the fake YouTube blocks is blamed, cools down and is
    scored like a Tor exit; every video finishes on the others, each identity within its budget."""
    blocked = fake_proxies.http
    fake_youtube.configure(exit_limits={blocked.sources[0]: Limit(0, 60.0, 600.0, "bot_check")})
    proxies = [fake_proxies.socks.url(), blocked.url(), fake_proxies.https.url()]
    videos = NORMAL[:12]
    budget, window = 3, 20.0
    args = ["--parallel", "--workers", "4", "--egress", "tor,proxies", "--per-exit", f"{budget}/{window:g}s"]
    for url in proxies:
        args += ["--proxy", url]
    result = study_buddy(tor_network, fake_youtube, tmp_path, *args, "--debug", "--", *videos)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "s3cret" not in result.stdout + result.stderr  # --debug: every log line is checked too
    assert {row["video_id"]: row["status"] for row in archive(tmp_path)} == dict.fromkeys(videos, "done")
    stats = fake_youtube.stats()
    served_by = {address for address, data in stats["exits"].items() if data["videos_served"]}
    assert {fake_proxies.socks.sources[0], fake_proxies.https.sources[0]} <= served_by
    assert served_by & set(fake_youtube.addresses)  # Tor's exits served too
    assert blocked.sources[0] not in served_by
    assert_video_budget_kept(stats, budget=budget, window_s=window)
    with sqlite3.connect(tmp_path / "notes" / ".study-buddy.sqlite3") as db:
        scores = {
            key: (served, blocked_)
            for key, served, blocked_ in db.execute(
                "SELECT key, served, blocked FROM exit_reputation WHERE key LIKE 'proxy:%'"
            )
        }
    assert scores[egress_key(parse_proxy(blocked.url()))][1] >= 1  # blamed, and only it
    assert all(b == 0 for key, (_s, b) in scores.items() if key != egress_key(parse_proxy(blocked.url())))
    assert "s3cret" not in (tmp_path / "notes" / ".study-buddy.sqlite3").read_bytes().decode("latin-1")
