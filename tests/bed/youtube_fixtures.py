"""Pytest fixtures of the fake YouTube: list ``tests.bed.youtube_fixtures`` in ``pytest_plugins``.

``fake_youtube_server`` (session) listens on port 443 of 127.0.0.11 .. 127.0.0.14, where exits 1-4 of the
private Tor network resolve ``www.youtube.com``, and of 127.0.0.10, where the bed's proxies resolve it;
``fake_youtube`` hands it to one test with zeroed stats, no latency and no limits. ``fake_proxies`` are the
bed's proxies (``tests.bed.proxies.ProxyBed``; the https one's certificate from the fake YouTube's CA, so
one ``--ca-bundle`` trusts both), ``fake_pot_provider`` a fresh fake bgutil PO token provider.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bed.hostile import HOSTILE_EXITS, HOSTILE_FIRST_HOST
from tests.bed.proxies import ProxyBed
from tests.bed.tornet import FIRST_SERVER_HOST, exit_server_address
from tests.bed.youtube_server import CERT_NAMES, FakeYouTube
from tests.bed.youtube_site import SiteOptions
from tests.fakes.pot_provider import FakePotProvider

EXIT_COUNT = 4  # as many as the tor_network fixture starts
HTTPS_PORT = 443
PROXY_TARGET = "127.0.0.10"  # where the bed's proxies resolve YouTube's names


def serve_youtube(
    exits: int, first_host: int, ca_dir: Path, client_addresses: tuple[str, ...] = ()
) -> Iterator[FakeYouTube]:
    """The fake www.youtube.com on the addresses of `exits` exits (and on `client_addresses`, where other
    clients than Tor exits reach it); skips when port 443 cannot be bound."""
    addresses = [exit_server_address(number, first_host) for number in range(1, exits + 1)]
    try:
        server = FakeYouTube.start(
            addresses, HTTPS_PORT, client_addresses=list(client_addresses), ca_dir=ca_dir
        )
    except PermissionError:
        pytest.skip(f"binding port {HTTPS_PORT} needs root")
    with server:
        yield server


@pytest.fixture(scope="session")
def fake_youtube_server(bed_lock: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeYouTube]:
    """The fake www.youtube.com on every exit address of the friendly bed."""
    yield from serve_youtube(
        EXIT_COUNT, FIRST_SERVER_HOST, tmp_path_factory.mktemp("youtube-ca"), (PROXY_TARGET,)
    )


@pytest.fixture(scope="session")
def hostile_youtube(bed_lock: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeYouTube]:
    """A fake www.youtube.com on the hostile network's exit addresses (set it up with `make_hostile`)."""
    yield from serve_youtube(HOSTILE_EXITS, HOSTILE_FIRST_HOST, tmp_path_factory.mktemp("hostile-ca"))


@pytest.fixture(scope="session")
def fake_proxies_server(fake_youtube_server: FakeYouTube) -> Iterator[ProxyBed]:
    proxies = ProxyBed.start(PROXY_TARGET, CERT_NAMES, fake_youtube_server.ca)
    try:
        yield proxies
    finally:
        proxies.stop()


@pytest.fixture
def fake_proxies(fake_proxies_server: ProxyBed, fake_youtube: FakeYouTube) -> ProxyBed:
    """The bed's proxies with zeroed counts (and the fake YouTube zeroed by ``fake_youtube``)."""
    fake_proxies_server.reset()
    return fake_proxies_server


@pytest.fixture
def fake_pot_provider() -> Iterator[FakePotProvider]:
    with FakePotProvider() as provider:
        yield provider


@pytest.fixture
def fake_youtube(fake_youtube_server: FakeYouTube) -> FakeYouTube:
    """The session's fake YouTube with zeroed stats, no latency, no limits and the site as catalogued."""
    fake_youtube_server.configure(latency=0.0, limit=None, exit_limits={}, site=SiteOptions())
    fake_youtube_server.reset()
    return fake_youtube_server
