"""Pytest fixtures of the fake YouTube: list ``tests.bed.youtube_fixtures`` in ``pytest_plugins``.

``fake_youtube_server`` (session) listens on port 443 of 127.0.0.11 .. 127.0.0.14, where exits 1-4 of the
private Tor network resolve ``www.youtube.com``; ``fake_youtube`` hands it to one test with zeroed stats, no
latency and no limits.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bed.hostile import HOSTILE_EXITS, HOSTILE_FIRST_HOST
from tests.bed.tornet import FIRST_SERVER_HOST, exit_server_address
from tests.bed.youtube_server import FakeYouTube

EXIT_COUNT = 4  # as many as the tor_network fixture starts
HTTPS_PORT = 443


def serve_youtube(exits: int, first_host: int, ca_dir: Path) -> Iterator[FakeYouTube]:
    """The fake www.youtube.com on the addresses of `exits` exits; skips when port 443 cannot be bound."""
    addresses = [exit_server_address(number, first_host) for number in range(1, exits + 1)]
    try:
        server = FakeYouTube.start(addresses, HTTPS_PORT, ca_dir=ca_dir)
    except PermissionError:
        pytest.skip(f"binding port {HTTPS_PORT} needs root")
    with server:
        yield server


@pytest.fixture(scope="session")
def fake_youtube_server(bed_lock: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeYouTube]:
    """The fake www.youtube.com on every exit address of the friendly bed."""
    yield from serve_youtube(EXIT_COUNT, FIRST_SERVER_HOST, tmp_path_factory.mktemp("youtube-ca"))


@pytest.fixture(scope="session")
def hostile_youtube(bed_lock: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeYouTube]:
    """A fake www.youtube.com on the hostile network's exit addresses (set it up with `make_hostile`)."""
    yield from serve_youtube(HOSTILE_EXITS, HOSTILE_FIRST_HOST, tmp_path_factory.mktemp("hostile-ca"))


@pytest.fixture
def fake_youtube(fake_youtube_server: FakeYouTube) -> FakeYouTube:
    """The session's fake YouTube with zeroed stats, no latency and no limits."""
    fake_youtube_server.configure(latency=0.0, limit=None, exit_limits={})
    fake_youtube_server.reset()
    return fake_youtube_server
