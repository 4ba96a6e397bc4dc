"""`study-buddy watch` through a real Tor that dies and comes back, with a playlist that is gone: the
watcher keeps one Tor connection across its checks, waits while Tor is down, never marks videos failed
because of it, connects again once Tor is back, keeps watching, and reports on SIGTERM."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import stem.control

from tests.bed.tornet import TorNetwork, reserve_ports
from tests.bed.youtube_server import FakeYouTube
from tests.test_e2e_tor import CLI, NORMAL, cli_env

pytestmark = pytest.mark.network
GONE_PLAYLIST = "https://www.youtube.com/playlist?list=PLstudybuddyGone00000000000000001"


class ClientTor:
    """A Tor client of our own on the bed's network, which the test can kill and start again."""

    def __init__(self, network: TorNetwork, workdir: Path) -> None:
        self.socks, self.control = reserve_ports("127.0.0.1", 2)
        workdir.mkdir(mode=0o700)
        self.torrc = workdir / "torrc"
        lines = [
            *network.relay_torrc_lines(),
            f"DataDirectory {workdir}",
            f"SocksPort 127.0.0.1:{self.socks} IsolateSOCKSAuth KeepAliveIsolateSOCKSAuth",
            f"ControlPort 127.0.0.1:{self.control}",
            "CookieAuthentication 1",
            f"Log notice file {workdir / 'log'}",
        ]
        self.torrc.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(["tor", "-f", str(self.torrc)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with stem.control.Controller.from_port(port=self.control) as controller:
                    controller.authenticate()
                    if "PROGRESS=100" in controller.get_info("status/bootstrap-phase"):
                        return
            except stem.SocketError:
                pass
            time.sleep(0.5)
        raise AssertionError("the client tor did not bootstrap")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def client_tor(tor_network: TorNetwork, tmp_path: Path) -> Iterator[ClientTor]:
    tor = ClientTor(tor_network, tmp_path / "client-tor")
    tor.start()
    yield tor
    if tor.process is not None and tor.process.poll() is None:
        tor.kill()


def statuses(tmp_path: Path) -> dict[str, str]:
    try:
        with sqlite3.connect(tmp_path / "notes" / ".study-buddy.sqlite3", timeout=10) as db:
            return dict(db.execute("SELECT video_id, status FROM videos").fetchall())
    except sqlite3.OperationalError:
        return {}


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_watch_survives_tor_dying_and_a_playlist_that_is_gone(
    tor_network: TorNetwork, fake_youtube: FakeYouTube, client_tor: ClientTor, tmp_path: Path
) -> None:
    first, later = NORMAL[:3], NORMAL[3:6]
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join([GONE_PLAYLIST, *first]) + "\n")
    env = cli_env(
        tor_network,
        fake_youtube,
        tmp_path,
        {
            "STUDY_BUDDY_TOR_SOCKS": f"127.0.0.1:{client_tor.socks}",
            "STUDY_BUDDY_TOR_CONTROL": f"127.0.0.1:{client_tor.control}",
        },
    )
    log_path = tmp_path / "watch.log"  # a file, not a pipe: read while the watcher runs, never full
    args = ["watch", "--interval", "2s", "--per-exit", "50/1m", "--log-level", "info", "--file", str(urls)]
    with log_path.open("w") as log_file:
        watcher = subprocess.Popen([CLI, *args], env=env, stdout=subprocess.PIPE, stderr=log_file, text=True)

    def connections() -> int:
        return log_path.read_text().count("connected to Tor")

    def failed_checks() -> int:
        return len(re.findall(r"check #\d+ failed", log_path.read_text()))

    try:
        wait_for(lambda: sum(s == "done" for s in statuses(tmp_path).values()) == 3, 120, "the first videos")
        wait_for(lambda: "check #3 started" in log_path.read_text(), 60, "a third check")
        assert connections() == 1  # one Tor for the watcher's life, not one per check
        client_tor.kill()
        with urls.open("a") as file:  # new videos arrive while Tor is down
            file.write("\n".join(later) + "\n")
        failed_before = failed_checks()
        wait_for(lambda: failed_checks() >= failed_before + 2, 60, "two checks against the dead Tor")
        assert "failed" not in statuses(tmp_path).values()
        client_tor.start()
        wait_for(lambda: sum(s == "done" for s in statuses(tmp_path).values()) == 6, 120, "the later videos")
        watcher.send_signal(signal.SIGTERM)
        stdout, _ = watcher.communicate(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    stderr = log_path.read_text()
    assert connections() == 2  # connected again once, when Tor was back
    assert watcher.returncode == 0, stdout + stderr
    assert "Watch stopped:" in stdout and "6 video(s) done, 0 failed" in stdout, stdout
    report = re.search(r"Watch stopped: (\d+) check\(s\) run, (\d+) skipped \((\d+) failed\)", stdout)
    assert report is not None, stdout
    assert int(report.group(3)) >= 1  # the checks that met a dead Tor
    assert "PLstudybuddyGone" in stderr and "gone or private" in stderr  # reported, and watching went on
    assert "Traceback" not in stdout + stderr
