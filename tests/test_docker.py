"""The Docker Compose setup, without a Docker engine: the compose file against the compose schema, and the
tor-proxy's own torrc, entrypoint and healthcheck run with a real tor (no network: `DisableNetwork 1`)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from studybuddy.egress.tor import TorController
from tests.bed.tornet import reserve_ports

ROOT = Path(__file__).parent.parent
TOR_DIR = ROOT / "docker" / "tor"
PASSWORD = "compose-test-password"


def test_compose_file_follows_the_compose_specification() -> None:
    result = subprocess.run(
        [
            str(Path(os.sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services_wire_study_buddy_to_a_healthy_tor_proxy() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    tor, app = compose["services"]["tor-proxy"], compose["services"]["study-buddy"]
    assert tor["build"] == "docker/tor"
    assert tor["healthcheck"]["test"] == ["CMD", "/usr/local/bin/healthcheck.sh"]
    assert app["depends_on"]["tor-proxy"]["condition"] == "service_healthy"
    assert app["environment"]["STUDY_BUDDY_TOR_SOCKS"] == "tor-proxy:9050"
    assert app["environment"]["STUDY_BUDDY_TOR_CONTROL"] == "tor-proxy:9051"
    assert "TOR_CONTROL_PASSWORD" in app["environment"]["STUDY_BUDDY_TOR_PASSWORD"]
    dockerfile = (TOR_DIR / "Dockerfile").read_text()
    assert "COPY torrc /etc/tor/torrc" in dockerfile


@pytest.fixture
def container_tor(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """The container's entrypoint and torrc, on free loopback ports and without network."""
    if shutil.which("tor") is None:
        pytest.skip("tor is not installed")
    socks_port, control_port = reserve_ports("127.0.0.1", 2)
    torrc = (TOR_DIR / "torrc").read_text()
    torrc = torrc.replace("0.0.0.0:9050", f"127.0.0.1:{socks_port}")
    torrc = torrc.replace("0.0.0.0:9051", f"127.0.0.1:{control_port}")
    torrc = torrc.replace("DataDirectory /var/lib/tor", f"DataDirectory {tmp_path / 'data'}")
    (tmp_path / "torrc").write_text(torrc + "DisableNetwork 1\n")
    env = {**os.environ, "TOR_CONTROL_PASSWORD": PASSWORD, "TORRC": str(tmp_path / "torrc")}
    process = subprocess.Popen(
        ["sh", str(TOR_DIR / "entrypoint.sh")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", control_port)) == 0:
                    break
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            time.sleep(0.1)
        yield socks_port, control_port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_compose_torrc_is_valid_for_tor() -> None:
    if shutil.which("tor") is None:
        pytest.skip("tor is not installed")
    result = subprocess.run(
        ["tor", "--verify-config", "-f", str(TOR_DIR / "torrc"), "--DataDirectory", "/tmp/sb-verify"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "Configuration was valid" in result.stdout, result.stdout


def test_container_tor_isolates_workers_and_takes_the_hashed_password(container_tor: tuple[int, int]) -> None:
    socks_port, control_port = container_tor
    tor = TorController.connect(control=("127.0.0.1", control_port), password=PASSWORD)
    try:
        raw = tor._controller
        socks_line = raw.get_conf("SocksPort")
        assert "IsolateSOCKSAuth" in socks_line and "KeepAliveIsolateSOCKSAuth" in socks_line
        assert raw.get_conf("ConfluxEnabled") == "0"
        assert raw.get_conf("CookieAuthentication") == "0"
        assert socks_line.startswith(f"127.0.0.1:{socks_port} ")
    finally:
        tor.close()


def test_healthcheck_reports_unhealthy_until_bootstrapped(container_tor: tuple[int, int]) -> None:
    _socks_port, control_port = container_tor
    env = {**os.environ, "TOR_CONTROL_PASSWORD": PASSWORD, "TOR_CONTROL_PORT": str(control_port)}
    result = subprocess.run(["bash", str(TOR_DIR / "healthcheck.sh")], env=env, check=False, timeout=10)
    assert result.returncode == 1  # authenticated, asked, and Tor (without network) is not at 100%
    wrong = {**env, "TOR_CONTROL_PASSWORD": "wrong"}
    assert subprocess.run(["bash", str(TOR_DIR / "healthcheck.sh")], env=wrong, check=False).returncode != 0


def test_compose_has_an_optional_postgres_and_a_worker_that_scales() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    postgres, worker = compose["services"]["postgres"], compose["services"]["worker"]
    assert postgres["profiles"] == ["postgres"]  # only when asked for
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert "container_name" not in worker and "ports" not in worker  # so `--scale worker=3` can run it
    assert worker["command"][:2] == ["work", "--follow"]
    assert worker["depends_on"]["postgres"] == {"condition": "service_healthy", "required": False}
    assert worker["environment"]["STUDY_BUDDY_ARCHIVE"].endswith("@postgres/studybuddy}")
    assert worker["environment"]["STUDY_BUDDY_OUTPUT"] == "/data/notes"  # the one shared notes folder
    assert "postgres" in (ROOT / "Dockerfile").read_text()  # the image has the 'postgres' extra
