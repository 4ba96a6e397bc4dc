"""Starts and stops the test bed for the scripts (demo, bench): everything on loopback, torn down by PID.

The bed is the private Tor network of ``tests.bed.tornet`` (4 exits), the fake HTTPS ``www.youtube.com`` of
``tests.bed.youtube_server`` on the exits' addresses (port 443: needs root or CAP_NET_BIND_SERVICE), the
fake Anthropic API and the bed's proxies (``tests.bed.proxies``). ``running_bed()`` yields it ready and
stops it on the way out, Ctrl-C and SIGTERM included (SIGTERM is turned into ``SystemExit`` so the same
clean-up runs). Every tor also runs with ``__OwningControllerProcess``: it exits by itself if this process
dies without cleaning up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.bed.hostile import HOSTILE_EXITS, HOSTILE_FIRST_HOST  # noqa: E402
from tests.bed.lock import bed_lock  # noqa: E402
from tests.bed.proxies import ProxyBed  # noqa: E402
from tests.bed.tornet import FIRST_SERVER_HOST, TorNetwork, exit_server_address  # noqa: E402
from tests.bed.youtube_fixtures import PROXY_TARGET  # noqa: E402
from tests.bed.youtube_server import CERT_NAMES, FakeYouTube  # noqa: E402
from tests.fakes.anthropic_server import API_KEY, MODEL, FakeAnthropic, start_fake_anthropic  # noqa: E402

EXITS = 4
HTTPS_PORT = 443
READY_TIMEOUT_S = 120.0
CLI = str(Path(sys.executable).parent / "study-buddy")
_OWN_ENV_PREFIXES = ("STUDY_BUDDY_", "ANTHROPIC_")
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@dataclass
class Bed:
    """A running bed: the Tor network, the fake YouTube, the fake Anthropic API and the bed's proxies."""

    tor: TorNetwork
    youtube: FakeYouTube
    anthropic: FakeAnthropic
    proxies: ProxyBed

    def cli_env(self, output: Path, *, notes: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment that runs the real ``study-buddy`` against the bed (Tor already running)."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(_OWN_ENV_PREFIXES) and key not in _PROXY_VARIABLES
        }
        env.update(self.shown_env(output, notes=notes))
        if notes:
            env["ANTHROPIC_API_KEY"] = API_KEY
        env.update(extra or {})
        return env

    def shown_env(self, output: Path, *, notes: bool) -> dict[str, str]:
        """The variables a user would set, without the API key (safe to print)."""
        env = {
            "STUDY_BUDDY_TOR": "system",
            "STUDY_BUDDY_TOR_SOCKS": f"{self.tor.socks[0]}:{self.tor.socks[1]}",
            "STUDY_BUDDY_TOR_CONTROL": f"{self.tor.control[0]}:{self.tor.control[1]}",
            "STUDY_BUDDY_CA_BUNDLE": self.youtube.ca_bundle,
            "STUDY_BUDDY_OUTPUT": str(output),
            "STUDY_BUDDY_NOTES": "true" if notes else "false",
        }
        if notes:
            env |= {"STUDY_BUDDY_MODEL": MODEL, "ANTHROPIC_BASE_URL": self.anthropic.url}
        return env


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def running_bed(*, latency: float = 0.0, hostile: bool = False) -> Iterator[Bed]:
    """Start the whole bed in a temporary folder, wait until every exit carries circuits, stop it after.

    `hostile`: the hostile bed's network instead (12 exits, names resolving to 127.0.0.101..112), to be
    turned against most exits with `tests.bed.hostile.make_hostile`."""
    exits, first_host = (HOSTILE_EXITS, HOSTILE_FIRST_HOST) if hostile else (EXITS, FIRST_SERVER_HOST)
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="study-buddy-bed-"))
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(bed_lock())  # the test suite may hold the bed's addresses: wait for it
            started = time.monotonic()
            say(f"starting a private Tor network ({exits} exits) on loopback")
            (workdir / "tornet").mkdir()
            network = TorNetwork.start(workdir / "tornet", exits=exits, first_server_host=first_host)
            tor = stack.enter_context(network)
            addresses = [exit_server_address(number, first_host) for number in range(1, exits + 1)]
            youtube = stack.enter_context(
                FakeYouTube.start(
                    addresses, HTTPS_PORT, client_addresses=[PROXY_TARGET], ca_dir=workdir, latency=latency
                )
            )
            proxies = ProxyBed.start(PROXY_TARGET, CERT_NAMES, youtube.ca)
            stack.callback(proxies.stop)
            anthropic, stop_anthropic = start_fake_anthropic()
            stack.callback(stop_anthropic)
            tor.wait_ready(timeout=READY_TIMEOUT_S)
            elapsed = time.monotonic() - started
            say(f"test bed ready in {elapsed:.0f} s; fake YouTube on {', '.join(addresses)}")
            try:
                yield Bed(tor, youtube, anthropic, proxies)
            finally:
                say("stopping the test bed")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
