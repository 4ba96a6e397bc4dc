"""Shared fixtures: the fake Anthropic API (a real HTTP server on loopback) and the private Tor network."""

import logging
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.fakes.anthropic_server", "tests.bed.fixtures", "tests.bed.youtube_fixtures"]
CONFIGURED_LOGGERS = ("studybuddy", "stem", "urllib3", "httpx", "httpcore", "anthropic")


@pytest.fixture(autouse=True)
def no_public_tor(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never start a Tor that joins the public network: `--tor` must be chosen explicitly."""
    monkeypatch.setenv("STUDY_BUDDY_TOR", "off")
    yield


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI configures logging for the whole process; undo it after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in CONFIGURED_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
