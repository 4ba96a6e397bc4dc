"""A private Tor network on loopback, built from Debian's ``tor`` and ``tor-gencert``.

Layout (everything inside 127.0.0.0/8; no tor ever learns of a public directory):

- 3 directory authorities, the exits and the middle relays all listen on ``RELAY_HOST``
  (127.0.0.2), never on an address a test server uses (tor's exit-enclave logic would pin every
  stream to the relay sharing the server's address);
- exit *n* (1-based) resolves names through its own ``DnsServer`` (``ServerDNSResolvConfFile``),
  which answers every name in ``hostnames`` with ``exit_server_address(n)`` = 127.0.0.(10+n),
  so a server listening on 127.0.0.11, 127.0.0.12, ... knows the exit by the local address a
  connection arrived on (``OutboundBindAddressExit`` is ignored for loopback destinations);
- exit policies accept 127.0.0.0/8 only; every other address is refused before any packet is sent;
- one client with a SocksPort (``IsolateSOCKSAuth KeepAliveIsolateSOCKSAuth``: one circuit per
  SOCKS username) and a ControlPort with cookie authentication.

Usage::

    with TorNetwork.start(workdir, exits=4) as net:
        net.wait_ready(timeout=60)
        ...  # socks5h://user:pass@{net.socks[0]}:{net.socks[1]}

Every tor is started with ``__OwningControllerProcess`` set to this process, so it exits by
itself if the test run dies; ``stop()`` ends the rest by PID.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import stem
import stem.control

from tests.bed.dns import DnsServer

logger = logging.getLogger(__name__)

TOR = "tor"
TOR_GENCERT = "tor-gencert"
RELAY_HOST = "127.0.0.2"
CLIENT_HOST = "127.0.0.1"
DNS_HOST = "127.0.0.1"
DEFAULT_HOSTNAMES = ("www.youtube.com",)
LOG_TAIL_LINES = 30
STOP_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.25

# Shared by every tor of the network, and by any other tor that joins it as a client.
NETWORK_OPTIONS = (
    "TestingTorNetwork 1",
    "UseDefaultFallbackDirs 0",
    "AddressDisableIPv6 1",
    "PathsNeededToBuildCircuits 0.67",
)
# Loopback-only exits summarise to reject-all in microdescriptors, so clients need full descriptors.
# (Clients also get ``ConfluxEnabled 0`` unless asked: conflux can spread one SOCKS username over two
# circuits with different exits.)
CLIENT_OPTIONS = ("UseMicrodescriptors 0",)
AUTHORITY_OPTIONS = (
    "AuthoritativeDirectory 1",
    "V3AuthoritativeDirectory 1",
    "ExitPolicy reject *:*",
    "V3AuthVotingInterval 10",  # the minimum: vote + dist delay must be under half of it
    "V3AuthVoteDelay 2",
    "V3AuthDistDelay 2",
    "TestingV3AuthInitialVotingInterval 5",
    "TestingV3AuthInitialVoteDelay 2",
    "TestingV3AuthInitialDistDelay 2",
    "V3AuthNIntervalsValid 2",
    "TestingMinExitFlagThreshold 0",
    "TestingDirAuthVoteExitIsStrict 1",
    "TestingDirAuthVoteGuardIsStrict 1",
)
# `accept 127.0.0.0/8:*` + `reject *:*` makes a 0.4.9 client refuse every exit; this equivalent
# policy (no IPv4 address outside 127/8 is accepted, IPv6 exiting is off) does not.
EXIT_OPTIONS = (
    "DirCache 0",
    "ExitRelay 1",
    "IPv6Exit 0",
    "ExitPolicyRejectPrivate 0",
    "ExitPolicy accept 127.0.0.0/8:*",
    "ExitPolicy reject 0.0.0.0/1:*",
    "ExitPolicy reject 128.0.0.0/1:*",
    "ExitPolicy accept *4:*",
    "ServerDNSDetectHijacking 0",
    "ServerDNSAllowBrokenConfig 0",
    "RefuseUnknownExits 0",
)
MIDDLE_OPTIONS = ("DirCache 0", "ExitRelay 0", "ExitPolicy reject *:*")


class TorNetworkError(RuntimeError):
    """The private network could not be built or did not become ready."""


@dataclass(frozen=True)
class ExitInfo:
    """An exit relay and the address a server sees its connections arrive on."""

    nickname: str
    fingerprint: str
    address: str


@dataclass
class TorNode:
    """One tor process of the network: its directory, ports and keys."""

    nickname: str
    datadir: Path
    options: list[str] = field(default_factory=list)
    fingerprint: str = ""
    or_port: int = 0
    dir_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.datadir / "notice.log"

    @property
    def torrc_path(self) -> Path:
        return self.datadir / "torrc"

    @property
    def console_path(self) -> Path:
        """Where tor's stdout and stderr go (configuration errors come before the log file opens)."""
        return self.datadir / "console.log"

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of this tor's notice log (else of its console output), for error messages."""
        for path in (self.log_path, self.console_path):
            with contextlib.suppress(FileNotFoundError):
                if text := path.read_text(errors="replace").strip():
                    return "\n".join(text.splitlines()[-lines:])
        return "(no log written)"


FIRST_SERVER_HOST = 11  # exit 1's names resolve to 127.0.0.11, exit 2's to 127.0.0.12, ...


def exit_server_address(exit_number: int, first: int = FIRST_SERVER_HOST) -> str:
    """The address the DNS server of exit ``exit_number`` (1-based) gives every name: 127.0.0.1N by
    default; another network on the same machine starts at another ``first`` host number."""
    host = first + exit_number - 1
    if not 3 <= host <= 254:
        raise ValueError(f"exit {exit_number} from host {first}: outside 127.0.0.3-254")
    return f"127.0.0.{host}"


def fingerprint_set(nodes: Sequence[TorNode]) -> str:
    """A tor router set naming exactly ``nodes``."""
    return ",".join(f"${node.fingerprint}" for node in nodes)


def reserve_ports(host: str, count: int) -> list[int]:
    """``count`` distinct free TCP ports on ``host`` (all held open together while choosing)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def run_tool(args: Sequence[str], cwd: Path, stdin: bytes = b"") -> str:
    """Run a tor tool to completion; a failure raises with its output."""
    result = subprocess.run(args, cwd=cwd, input=stdin, capture_output=True, timeout=60, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")
        raise TorNetworkError(f"{args[0]} failed ({result.returncode}):\n{output[-2000:]}")
    return result.stdout.decode(errors="replace")


class TorNetwork:
    """3 authorities, ``exits`` exits, ``middles`` middle relays and a client, all on loopback."""

    def __init__(
        self,
        workdir: Path,
        exits: int = 4,
        middles: int = 2,
        hostnames: Sequence[str] = DEFAULT_HOSTNAMES,
        conflux: bool = False,
        first_server_host: int = FIRST_SERVER_HOST,
    ) -> None:
        if not 1 <= exits <= 200:
            raise ValueError(f"exits must be between 1 and 200, not {exits}")
        self.workdir = workdir
        self.conflux = conflux
        self.first_server_host = first_server_host
        self._empty_torrc = workdir / "empty-torrc"  # keeps the system torrc files out
        self._empty_torrc.touch()
        self.authorities = [self._node(f"auth{i}") for i in range(3)]
        self.exit_nodes = [self._node(f"exit{n}") for n in range(1, exits + 1)]
        self.middle_nodes = [self._node(f"middle{i}") for i in range(middles)]
        self.client = self._node("client")
        self.dns_servers = [
            DnsServer(dict.fromkeys(hostnames, exit_server_address(n, first_server_host)), host=DNS_HOST)
            for n in range(1, exits + 1)
        ]
        socks_port, control_port = reserve_ports(CLIENT_HOST, 2)
        self.socks = (CLIENT_HOST, socks_port)
        self.control = (CLIENT_HOST, control_port)
        self.control_cookie = self.client.datadir / "control_auth_cookie"
        self._authority_lines: list[str] = []
        self._controller: stem.control.Controller | None = None

    @classmethod
    def start(
        cls,
        workdir: Path,
        exits: int = 4,
        middles: int = 2,
        hostnames: Sequence[str] = DEFAULT_HOSTNAMES,
        conflux: bool = False,
        first_server_host: int = FIRST_SERVER_HOST,
    ) -> TorNetwork:
        """Build the network in ``workdir`` and launch every tor; use the result as a context manager."""
        network = cls(workdir, exits, middles, hostnames, conflux, first_server_host)
        try:
            network.launch()
        except BaseException:
            network.stop()
            raise
        return network

    def __enter__(self) -> TorNetwork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def relays(self) -> list[TorNode]:
        return [*self.authorities, *self.exit_nodes, *self.middle_nodes]

    @property
    def nodes(self) -> list[TorNode]:
        return [*self.relays, self.client]

    @property
    def exits(self) -> list[ExitInfo]:
        return [
            ExitInfo(node.nickname, node.fingerprint, exit_server_address(n, self.first_server_host))
            for n, node in enumerate(self.exit_nodes, start=1)
        ]

    @property
    def pids(self) -> list[int]:
        """PIDs of the tor processes started (running or not)."""
        return [node.process.pid for node in self.nodes if node.process is not None]

    def relay_torrc_lines(self) -> list[str]:
        """The torrc lines another *client* tor needs to join this network (no SocksPort/ControlPort)."""
        conflux = f"ConfluxEnabled {int(self.conflux)}"
        return [*NETWORK_OPTIONS, *CLIENT_OPTIONS, conflux, *self._authority_lines]

    def launch(self) -> None:
        """Make keys, write every torrc, start the DNS servers and the tor processes."""
        self._configure_relays()
        for server in self.dns_servers:
            server.start()
        self._configure_exits_dns()
        self._configure_client()
        for node in self.nodes:
            self._start_process(node)
        self._check_alive()

    def wait_ready(self, timeout: float = 60.0, min_exits: int | None = None) -> None:
        """Return once the client is bootstrapped and ``min_exits`` (default all) exits carry circuits.

        Each exit is proven usable by building a circuit through it from the client.
        """
        deadline = time.monotonic() + timeout
        needed = len(self.exit_nodes) if min_exits is None else min_exits
        if needed > len(self.exit_nodes):
            raise ValueError(f"min_exits={needed}, but the network has {len(self.exit_nodes)} exits")
        controller = self._owning_controller(deadline)
        self._wait_bootstrapped(controller, deadline)
        logger.info("tor client bootstrapped after %.1f s", timeout - (deadline - time.monotonic()))
        usable = self._wait_usable_exits(controller, needed, deadline)
        logger.info("tor network ready: %d usable exits", len(usable))

    def stop(self) -> None:
        """Stop every tor (SIGTERM, then SIGKILL) by PID and every DNS server; safe to call twice."""
        if self._controller is not None:
            self._controller.close()
            self._controller = None
        running = [node.process for node in self.nodes if node.process and node.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        grace_deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            try:
                process.wait(timeout=max(0.0, grace_deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_GRACE_SECONDS)
        for server in self.dns_servers:
            server.stop()

    # --- configuration -------------------------------------------------------------------

    def _node(self, nickname: str) -> TorNode:
        datadir = self.workdir / nickname
        datadir.mkdir(parents=True, mode=0o700)
        return TorNode(nickname, datadir)

    def _common_options(self, node: TorNode) -> list[str]:
        return [
            *NETWORK_OPTIONS,
            f"DataDirectory {node.datadir}",
            f"Nickname {node.nickname}",
            f"Log notice file {node.log_path}",
            "ShutdownWaitLength 0",
            f"__OwningControllerProcess {os.getpid()}",
        ]

    def _configure_relays(self) -> None:
        ports = iter(reserve_ports(RELAY_HOST, len(self.relays) + len(self.authorities)))
        for node in self.relays:
            node.or_port = next(ports)
        for node in self.authorities:
            node.dir_port = next(ports)
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            fingerprints = pool.map(self._make_identity, self.relays)
            v3idents = list(pool.map(self._make_authority_certificate, self.authorities))
            for node, fingerprint in zip(self.relays, fingerprints, strict=True):
                node.fingerprint = fingerprint
        for node in self.relays:
            node.options = [
                *self._common_options(node),
                "SocksPort 0",
                f"Address {RELAY_HOST}",
                f"ORPort {RELAY_HOST}:{node.or_port}",
                "AssumeReachable 1",
                f"ContactInfo {node.nickname}@test.invalid",
            ]
        bandwidths = self._write_bandwidth_file()
        for node, v3ident in zip(self.authorities, v3idents, strict=True):
            node.options += [
                f"DirPort {RELAY_HOST}:{node.dir_port}",
                *AUTHORITY_OPTIONS,
                f"TestingDirAuthVoteExit {fingerprint_set(self.exit_nodes)}",
                f"TestingDirAuthVoteGuard {fingerprint_set([*self.authorities, *self.middle_nodes])}",
                f"V3BandwidthsFile {bandwidths}",
            ]
            self._authority_lines.append(
                f"DirAuthority {node.nickname} orport={node.or_port} no-v2 v3ident={v3ident} "
                f"{RELAY_HOST}:{node.dir_port} {node.fingerprint}"
            )
        for node in self.exit_nodes:
            node.options += EXIT_OPTIONS
        for node in self.middle_nodes:
            node.options += MIDDLE_OPTIONS

    def _write_bandwidth_file(self) -> Path:
        """Equal measured bandwidths, so clients pick exits uniformly (self-measured ones differ wildly)."""
        path = self.workdir / "bandwidths"
        lines = [str(int(time.time()))] + [f"node_id=${node.fingerprint} bw=1000" for node in self.relays]
        path.write_text("\n".join(lines) + "\n")
        return path

    def _configure_exits_dns(self) -> None:
        for node, server in zip(self.exit_nodes, self.dns_servers, strict=True):
            host, port = server.address
            resolv_conf = node.datadir / "resolv.conf"
            resolv_conf.write_text(f"nameserver {host}:{port}\n")
            node.options.append(f"ServerDNSResolvConfFile {resolv_conf}")

    def _configure_client(self) -> None:
        host, socks_port = self.socks
        _, control_port = self.control
        self.client.options = [
            *self._common_options(self.client),
            *CLIENT_OPTIONS,
            f"ConfluxEnabled {int(self.conflux)}",
            f"SocksPort {host}:{socks_port} IsolateSOCKSAuth KeepAliveIsolateSOCKSAuth",
            f"ControlPort {host}:{control_port}",
            "CookieAuthentication 1",
            f"CookieAuthFile {self.control_cookie}",
        ]

    def _make_identity(self, node: TorNode) -> str:
        """Create the relay's identity keys; return its RSA fingerprint."""
        empty = str(self._empty_torrc)
        args = [TOR, "--defaults-torrc", empty, "-f", empty, "--list-fingerprint"]
        args += ["--DataDirectory", str(node.datadir), "--ORPort", "1", "--Nickname", node.nickname]
        # A placeholder authority keeps tor from even reading the public directory list.
        args += ["--DirAuthority", f"placeholder {RELAY_HOST}:1 {'0' * 40}"]
        run_tool(args, cwd=node.datadir)
        return (node.datadir / "fingerprint").read_text().split()[1]

    def _make_authority_certificate(self, node: TorNode) -> str:
        """Create the v3 authority keys and certificate; return the v3 identity (``v3ident``)."""
        keys = node.datadir / "keys"
        args = [TOR_GENCERT, "--create-identity-key", "--passphrase-fd", "0", "-m", "12"]
        args += ["-a", f"{RELAY_HOST}:{node.dir_port}", "-i", str(keys / "authority_identity_key")]
        args += ["-s", str(keys / "authority_signing_key"), "-c", str(keys / "authority_certificate")]
        run_tool(args, cwd=keys, stdin=b"\n")
        for line in (keys / "authority_certificate").read_text().splitlines():
            if line.startswith("fingerprint "):
                return line.split()[1]
        raise TorNetworkError(f"no fingerprint in the certificate of {node.nickname}")

    # --- processes -----------------------------------------------------------------------

    def _start_process(self, node: TorNode) -> None:
        node.torrc_path.write_text("\n".join([*node.options, *self._authority_lines]) + "\n")
        with node.console_path.open("wb") as console:
            node.process = subprocess.Popen(
                [TOR, "--defaults-torrc", str(self._empty_torrc), "-f", str(node.torrc_path)],
                cwd=node.datadir,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
            )

    def _check_alive(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is not None:
                raise TorNetworkError(
                    f"tor {node.nickname} exited with {node.process.returncode}; "
                    f"its log (in {node.datadir}) ends with:\n{node.log_tail()}"
                )

    def _timeout_error(self, what: str) -> TorNetworkError:
        return TorNetworkError(
            f"timed out waiting for {what}; the client log ({self.client.log_path}) ends with:\n"
            f"{self.client.log_tail()}"
        )

    # --- readiness -----------------------------------------------------------------------

    def _owning_controller(self, deadline: float) -> stem.control.Controller:
        """The network's own control connection to the client, opened once and kept until ``stop()``.

        The client runs with ``__OwningControllerProcess`` = this process, so stem's first
        connection from here takes ownership (TAKEOWNERSHIP, then resets the option): the client
        then exits when this connection closes, and later controllers (tests, the product) do not
        take ownership again.
        """
        while self._controller is None:
            self._check_alive()
            try:
                controller = stem.control.Controller.from_port(*self.control)
            except stem.SocketError:
                if time.monotonic() > deadline:
                    raise self._timeout_error("the client's ControlPort") from None
                time.sleep(POLL_SECONDS)
                continue
            controller.authenticate()
            self._controller = controller
        return self._controller

    def _wait_bootstrapped(self, controller: stem.control.Controller, deadline: float) -> None:
        while "PROGRESS=100" not in controller.get_info("status/bootstrap-phase"):
            self._check_alive()
            if time.monotonic() > deadline:
                raise self._timeout_error("the client to bootstrap")
            time.sleep(POLL_SECONDS)

    def _wait_usable_exits(
        self, controller: stem.control.Controller, needed: int, deadline: float
    ) -> set[str]:
        usable: set[str] = set()
        middle = self.middle_nodes[0] if self.middle_nodes else self.authorities[0]
        while True:
            self._check_alive()
            for node in self.exit_nodes:
                remaining = max(POLL_SECONDS, deadline - time.monotonic())
                path = [middle.fingerprint, node.fingerprint]
                if node.fingerprint not in usable and self._builds_circuit(controller, path, remaining):
                    usable.add(node.fingerprint)
            if len(usable) >= needed:
                return usable
            if time.monotonic() > deadline:
                raise self._timeout_error(f"{needed} usable exits ({len(usable)} so far)")
            time.sleep(POLL_SECONDS)

    @staticmethod
    def _builds_circuit(controller: stem.control.Controller, path: list[str], timeout: float) -> bool:
        """Whether the client knows the last hop as an Exit and can build a circuit through ``path``."""
        exit_fingerprint = path[-1]
        status = controller.get_network_status(exit_fingerprint, None)
        if status is None or "Exit" not in status.flags:
            return False
        try:
            circuit_id = controller.new_circuit(path, await_build=True, timeout=min(timeout, 10.0))
        except (stem.ControllerError, stem.Timeout) as error:
            logger.debug("circuit through %s failed: %s", exit_fingerprint, error)
            return False
        controller.close_circuit(circuit_id)
        return True
