"""The private Tor network of the test bed carries traffic, tells exits apart and stays on loopback."""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import stem.control

from tests.bed import fixtures, tornet
from tests.bed.tornet import TorNetwork, TorNetworkError, exit_server_address, reserve_ports

pytestmark = pytest.mark.network

HOSTNAME = "www.youtube.com"
USERNAMES = 16
BIND_ATTEMPTS = 20
JOIN_TIMEOUT_SECONDS = 30
NO_EXIT_ALLOWS = "No Tor server allows exit to"


class WhereAmIHandler(BaseHTTPRequestHandler):
    """Answers with the local address the connection arrived on, i.e. which exit sent it."""

    def do_GET(self) -> None:
        body = f"{self.connection.getsockname()[0]} {self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def bind_on_every_address(addresses: list[str]) -> list[ThreadingHTTPServer]:
    """One HTTP server per address, all on the same free port (a few bounded attempts)."""
    for _ in range(BIND_ATTEMPTS):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = probe.getsockname()[1]
        servers: list[ThreadingHTTPServer] = []
        try:
            for address in addresses:
                servers.append(ThreadingHTTPServer((address, port), WhereAmIHandler))
        except OSError:
            for server in servers:
                server.server_close()
            continue
        return servers
    raise RuntimeError(f"no port free on all of {addresses}")


@pytest.fixture(scope="module")
def exit_servers(tor_network: TorNetwork) -> Iterator[int]:
    """An HTTP server on every per-exit address; yields their common port."""
    servers = bind_on_every_address([info.address for info in tor_network.exits])
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    yield servers[0].server_address[1]
    for server in servers:
        server.shutdown()
        server.server_close()


def fetch_through_tor(socks: tuple[str, int], username: str, url: str) -> str:
    """GET ``url`` through a tor SocksPort as ``username`` (names resolved by the exit)."""
    host, port = socks
    proxy = f"socks5h://{username}:secret@{host}:{port}"
    with requests.Session() as session:
        session.trust_env = False
        response = session.get(url, proxies={"http": proxy, "https": proxy}, timeout=30)
    response.raise_for_status()
    return response.text


def test_client_is_bootstrapped_and_reachable_with_cookie_auth(tor_network: TorNetwork) -> None:
    assert len(tor_network.pids) == 3 + 4 + 2 + 1
    with stem.control.Controller.from_port(*tor_network.control) as controller:
        controller.authenticate()
        assert "PROGRESS=100" in controller.get_info("status/bootstrap-phase")
        assert controller.get_conf("CookieAuthFile") == str(tor_network.control_cookie)
        exit_fingerprints = {info.fingerprint for info in tor_network.exits}
        voted_exits = {
            status.fingerprint for status in controller.get_network_statuses() if "Exit" in status.flags
        }
    assert voted_exits == exit_fingerprints
    assert tor_network.control_cookie.stat().st_size == 32


def test_exits_get_distinct_per_exit_addresses(tor_network: TorNetwork) -> None:
    addresses = [info.address for info in tor_network.exits]
    assert addresses == ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"]
    assert [exit_server_address(n) for n in (1, 9)] == ["127.0.0.11", "127.0.0.19"]


def test_socks_usernames_reach_several_exits_by_name(tor_network: TorNetwork, exit_servers: int) -> None:
    url = f"http://{HOSTNAME}:{exit_servers}/"
    usernames = [f"user{i}" for i in range(USERNAMES)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda name: fetch_through_tor(tor_network.socks, name, url), usernames))
    seen = {answer.split()[0] for answer in answers}
    assert {answer.split()[1] for answer in answers} == {f"{HOSTNAME}:{exit_servers}"}
    assert seen <= {info.address for info in tor_network.exits}
    assert len(seen) >= 3, f"{USERNAMES} SOCKS usernames only reached {seen}"
    # The exits resolved the name with their own DNS servers (tor's random letter case included).
    asked = {question.name.lower() for server in tor_network.dns_servers for question in server.queries}
    assert asked == {HOSTNAME}
    # One username keeps its circuit, hence its exit.
    assert fetch_through_tor(tor_network.socks, usernames[0], url) == answers[0]


def test_non_loopback_destination_is_refused_without_leaving_loopback(tor_network: TorNetwork) -> None:
    refusals_before = tor_network.client.log_path.read_text().count(NO_EXIT_ALLOWS)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectionError, match="SOCKS server failure"):
        fetch_through_tor(tor_network.socks, "outsider", "http://203.0.113.1:80/")
    assert time.monotonic() - started < 30  # refused at once, not after a circuit timeout
    # The client itself refused: no exit policy accepts the address, so no circuit carried it.
    assert tor_network.client.log_path.read_text().count(NO_EXIT_ALLOWS) == refusals_before + 1


def test_every_torrc_names_only_loopback_addresses_and_private_authorities(tor_network: TorNetwork) -> None:
    torrcs = sorted(tor_network.workdir.glob("*/torrc"))
    assert len(torrcs) == len(tor_network.pids)
    for torrc in torrcs:
        text = torrc.read_text()
        addressing_lines = [line for line in text.splitlines() if not line.startswith("ExitPolicy ")]
        for address in re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", "\n".join(addressing_lines)):
            assert ipaddress.ip_address(address) in ipaddress.ip_network("127.0.0.0/8"), torrc
        assert text.count("\nDirAuthority ") == 3, torrc
        assert "UseDefaultFallbackDirs 0" in text
    for node in tor_network.exit_nodes:
        resolv_conf = (node.datadir / "resolv.conf").read_text()
        assert re.fullmatch(r"nameserver 127\.0\.0\.1:\d+\n", resolv_conf)


def test_relay_torrc_lines_let_another_client_join(tor_network: TorNetwork) -> None:
    lines = tor_network.relay_torrc_lines()
    assert "TestingTorNetwork 1" in lines
    assert "UseMicrodescriptors 0" in lines
    assert "ConfluxEnabled 0" in lines
    authorities = [line for line in lines if line.startswith("DirAuthority ")]
    assert len(authorities) == 3
    for node, line in zip(tor_network.authorities, authorities, strict=True):
        assert line.endswith(f"127.0.0.2:{node.dir_port} {node.fingerprint}")
        assert f"orport={node.or_port} " in line
    assert not any(line.startswith(("SocksPort", "ControlPort")) for line in lines)


def test_another_tor_joins_with_relay_torrc_lines(
    tor_network: TorNetwork, exit_servers: int, tmp_path: Path
) -> None:
    socks_port = reserve_ports("127.0.0.1", 1)[0]
    torrc = tmp_path / "torrc"
    own_lines = [
        f"DataDirectory {tmp_path / 'data'}",
        f"SocksPort 127.0.0.1:{socks_port} IsolateSOCKSAuth",
        f"__OwningControllerProcess {os.getpid()}",
    ]
    torrc.write_text("\n".join([*tor_network.relay_torrc_lines(), *own_lines, "Log notice stderr"]) + "\n")
    process = subprocess.Popen(["tor", "-f", str(torrc)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://{HOSTNAME}:{exit_servers}/"
    try:
        deadline = time.monotonic() + JOIN_TIMEOUT_SECONDS
        while True:
            try:
                answer = fetch_through_tor(("127.0.0.1", socks_port), "joiner", url)
                break
            except requests.exceptions.ConnectionError:
                assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
                assert time.monotonic() < deadline, "the joining tor never carried the request"
                time.sleep(0.5)
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert answer.split()[0] in {info.address for info in tor_network.exits}


def test_a_dead_tor_is_reported_and_stop_ends_every_process(tmp_path: Path) -> None:
    fixtures.require_tor()
    network = TorNetwork.start(tmp_path, exits=1, middles=1, conflux=True)
    with network:
        assert "ConfluxEnabled 1" in network.client.torrc_path.read_text()
        victim = network.exit_nodes[0].process
        assert victim is not None
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=5)
        with pytest.raises(TorNetworkError, match="tor exit1 exited with -9; its log"):
            network.wait_ready(timeout=10)
    assert len(network.pids) == 3 + 1 + 1 + 1
    for pid in network.pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # signal 0 only probes: the process is gone (and reaped)


def test_a_tor_that_refuses_its_torrc_is_reported_with_its_own_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixtures.require_tor()
    monkeypatch.setattr(tornet, "EXIT_OPTIONS", (*tornet.EXIT_OPTIONS, "NoSuchOption 1"))
    with TorNetwork.start(tmp_path, exits=1, middles=1) as network:
        with pytest.raises(
            TorNetworkError, match=r"(?s)tor exit1 exited with 1.*Unknown option 'NoSuchOption'"
        ):
            network.wait_ready(timeout=10)
