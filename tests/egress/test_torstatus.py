"""Tests for studybuddy.torstatus: what `study-buddy tor status` and `tor check` print, from a fake
controller and scripted probes, and end to end through the test bed's Tor (tests marked `network`)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from stem.response import ControlMessage

from studybuddy.cli.main import cli
from studybuddy.config import Settings
from studybuddy.egress import torstatus
from studybuddy.egress.reputation import PacePolicy, Reputation
from studybuddy.egress.sessions import Identity, ProxyEndpoint
from studybuddy.egress.tor import ExitRelay
from studybuddy.egress.torstatus import check_lines, status_lines
from studybuddy.proxyspec import egress_key, parse_proxy
from studybuddy.store.archive import Archive
from studybuddy.units import ExitBudget
from tests.bed.tornet import TorNetwork
from tests.bed.youtube_server import FakeYouTube, Limit
from tests.egress.test_tor import FakeController, make_tor
from tests.test_e2e_tor import CLI, NORMAL, cli_env, study_buddy
from tests.torevents import EXIT_1, EXIT_2, GUARD, MIDDLE

SETTINGS = Settings(per_exit=ExitBudget.parse("8/10m"), exit_cooldown_s=600.0)
A = ExitRelay(EXIT_1, "exitone", "198.51.100.1")
B = ExitRelay(EXIT_2, "exittwo", "198.51.100.2")


class CircuitsController(FakeController):
    """The fake stem controller, with circuits that SOCKS usernames opened."""

    def get_circuits(self, default: object = None) -> list[object]:
        def circuit(circuit_id: str, status: str, exit_fp: str, nickname: str, user: str) -> object:
            path = f"${GUARD}~guard,${MIDDLE}~middle,${exit_fp}~{nickname}"
            line = f'CIRC {circuit_id} {status} {path} PURPOSE=GENERAL SOCKS_USERNAME="{user}"'
            return ControlMessage.from_str(f"650 {line}\r\n", "EVENT")

        return [
            circuit("5", "BUILT", EXIT_1, "exitone", "sb-run-w0-g0"),
            circuit("6", "BUILT", EXIT_1, "exitone", "sb-run-w1-g0"),
            circuit("7", "BUILT", EXIT_2, "exittwo", "sb-run-list-g0"),
            circuit("8", "LAUNCHED", EXIT_2, "exittwo", "sb-run-w2-g1"),
        ]


def test_status_shows_bootstrap_circuits_exits_and_from_the_archive_the_best_and_worst(
    tmp_path: Path,
) -> None:
    with Archive.open(tmp_path) as archive:
        reputation = Reputation(PacePolicy(SETTINGS.per_exit, 600.0), store=archive)
        for _ in range(3):
            reputation.served(EXIT_1)
        reputation.blocked(EXIT_2)
        archive.record_exit_event(EXIT_1, "use")
        archive.record_exit_event(EXIT_1, "use")
        lines = status_lines(make_tor(CircuitsController()), archive, SETTINGS)

    assert lines[0] == 'Tor: bootstrapped 75% (Loaded "enough" directory info)'
    assert lines[1] == "Circuits: 4 (3 built)"
    assert lines[2].split() == ["5", "BUILT", "GENERAL", "sb-run-w0-g0", "exitone", "(198.51.100.1)"]
    assert lines[5].split() == ["8", "LAUNCHED", "GENERAL", "sb-run-w2-g1", "-"]  # no exit until built
    assert lines[6] == "Exits in use: 2"
    assert lines[7].split() == ["exitone", "(198.51.100.1)", EXIT_1, "2", "username(s)"]
    assert lines[8].split() == ["exittwo", "(198.51.100.2)", EXIT_2, "1", "username(s)"]
    assert lines[9] == (
        "Exits known from the archive: 2 (1 serve, 1 blocked, 0 faded); "
        "budget at most 8 videos per 600 s each"
    )
    assert lines[10] == "Best:"
    assert lines[11].split()[:6] == [EXIT_1, "good", "served", "3.0", "blocked", "0.0,"]
    assert lines[11].endswith("2/8 used")
    assert lines[12] == "Worst:"
    assert lines[13].split()[:6] == [EXIT_2, "bad", "served", "0.0", "blocked", "1.0,"]
    assert "cooling 600 s" in lines[13]


def test_proxies_in_the_archive_are_counted_apart_from_the_exits(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as archive:
        reputation = Reputation(PacePolicy(SETTINGS.per_exit, 600.0), store=archive)
        reputation.served(EXIT_1)
        reputation.served(egress_key(parse_proxy("http://alice:s3cret@127.0.0.21:8080")))
        reputation.blocked(egress_key(parse_proxy("socks5h://127.0.0.22:1080")))
        lines = torstatus.archive_lines(archive, SETTINGS)
    assert lines[0].startswith("Exits known from the archive: 1 (1 serve, 0 blocked, 0 faded)")
    assert lines[1] == "Proxies known from the archive: 2 (1 serve, 1 blocked, 0 faded)"
    assert not any("proxy:" in line or "s3cret" in line for line in lines)  # no proxy listed among the exits


def test_status_without_known_exits_or_without_an_archive(tmp_path: Path) -> None:
    tor = make_tor(FakeController())
    with Archive.open(tmp_path) as archive:
        lines = status_lines(tor, archive, SETTINGS)
    assert lines[-1] == "  none yet: run study-buddy to learn which exits serve"
    assert not any(line.startswith("Exits known") for line in status_lines(tor, None, SETTINGS))


def test_tor_status_reads_the_archive_that_archive_names_before_it_asks_tor(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["tor", "status", "-o", str(tmp_path), "--tor", "system", "--archive", "mysql://u:pw@db/x"]
    )
    assert result.exit_code == 1
    assert "unknown archive scheme 'mysql'" in result.output and "pw" not in result.output
    assert "Tor" not in result.output  # refused before any Tor was asked


class ClosingTor:
    def __init__(self) -> None:
        self.closed: list[str] = []

    def close_circuits_of(self, username: str) -> int:
        self.closed.append(username)
        return 1


def test_check_opens_one_circuit_per_worker_says_where_each_exits_and_closes_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    landed = {0: A, 1: None, 2: B, 3: A}  # worker -> the exit its circuit got (None: reached nothing)
    probed: list[Identity] = []

    def probe(tor: object, identity: Identity, proxy: ProxyEndpoint) -> ExitRelay | None:
        probed.append(identity)
        return landed[identity.worker]

    monkeypatch.setattr(torstatus, "probe_exit", probe)
    tor = ClosingTor()

    lines = check_lines(tor, ProxyEndpoint("127.0.0.1", 9050), 4)  # type: ignore[arg-type]

    assert lines == [
        f"worker 0: exitone (198.51.100.1)  {EXIT_1}",
        "worker 1: no circuit reached www.youtube.com",
        f"worker 2: exittwo (198.51.100.2)  {EXIT_2}",
        f"worker 3: exitone (198.51.100.1)  {EXIT_1}",
        "4 worker(s) on 2 distinct exit(s)",
    ]
    usernames = sorted(identity.username for identity in probed)
    assert len(set(usernames)) == 4 and all(name.endswith("-g0") for name in usernames)  # own credentials
    assert sorted(tor.closed) == usernames  # every circuit it opened is closed again


@pytest.mark.network
def test_tor_check_opens_one_circuit_per_worker(
    tor_network: TorNetwork, fake_youtube: FakeYouTube, tmp_path: Path
) -> None:
    result = study_buddy(tor_network, fake_youtube, tmp_path, "tor", "check", "--workers", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    fingerprints = {info.fingerprint for info in tor_network.exits}
    for worker in range(4):
        line = next(line for line in lines if line.startswith(f"worker {worker}: "))
        assert line.split()[-1] in fingerprints
    assert lines[-1].startswith("4 worker(s) on ")


@pytest.mark.network
def test_tor_status_shows_circuits_budgets_and_cool_downs_and_tor_events_are_logged(
    tor_network: TorNetwork, fake_youtube: FakeYouTube, tmp_path: Path
) -> None:
    fake_youtube.configure(limit=Limit(videos=1, window=60.0, block_for=30.0, style="http_429"))
    (tmp_path / ".env.debug").write_text("DEBUG_LOG_TOR_EVENTS=true\nDEBUG_LOG_LEVEL=info\n")
    run = subprocess.run(
        [CLI, "--debug", "--max-rotations", "1", "--", *NORMAL[:3]],
        env=cli_env(tor_network, fake_youtube, tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert "tor stream" in run.stderr and "user sb-" in run.stderr, run.stderr[-3000:]
    assert "SOCKS_PASSWORD" not in run.stderr
    status = study_buddy(tor_network, fake_youtube, tmp_path, "tor", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "Tor: bootstrapped 100%" in status.stdout
    assert "Circuits:" in status.stdout and "Exits in use:" in status.stdout
    assert "cooling" in status.stdout  # the exits YouTube blocked, remembered by the archive
    used = [line for line in status.stdout.splitlines() if " used" in line]
    assert used and all(line.split()[0] in {info.fingerprint for info in tor_network.exits} for line in used)


@pytest.mark.network
def test_tor_status_shows_what_the_shared_archive_knows_with_archive(
    tor_network: TorNetwork, fake_youtube: FakeYouTube, tmp_path: Path, fresh_database: Callable[[], str]
) -> None:
    url = fresh_database()
    blocked = tor_network.exits[0].fingerprint
    with Archive.open(tmp_path / "notes", url) as archive:  # what another machine learned
        Reputation(PacePolicy(SETTINGS.per_exit, 600.0), store=archive).blocked(blocked)
    local = study_buddy(tor_network, fake_youtube, tmp_path, "tor", "status")
    shared = study_buddy(tor_network, fake_youtube, tmp_path, "tor", "status", "--archive", url)
    assert local.returncode == 0 and shared.returncode == 0, shared.stdout + shared.stderr
    assert "Exits known from the archive" not in local.stdout  # no archive in the output folder
    assert "Exits known from the archive: 1 (0 serve, 1 blocked, 0 faded)" in shared.stdout
    assert any(line.split()[:2] == [blocked, "bad"] for line in shared.stdout.splitlines()), shared.stdout
