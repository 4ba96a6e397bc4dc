"""Shared fixtures: the fake Anthropic API (a real HTTP server on loopback) and the private Tor network."""

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.notecheck import check_note

pytest_plugins = [
    "tests.fakes.anthropic_server",
    "tests.bed.fixtures",
    "tests.bed.youtube_fixtures",
    "tests.tor_fixtures",
    "tests.pg_fixtures",
]
CONFIGURED_LOGGERS = ("studybuddy", "stem", "urllib3", "httpx", "httpcore", "anthropic")


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The user cache folder (embedded Tor's data, the registry of exclusions in shared Tors) of the test
    session is its own, inherited by every study-buddy process a test starts."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = previous


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


@pytest.fixture(autouse=True)
def every_note_keeps_the_quality_rules(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used a temporary folder, check every note written into an output tree there
    (valid front matter for any title, links that resolve, timestamps within the video)."""
    if "tmp_path" not in request.fixturenames or request.node.get_closest_marker("unchecked_notes"):
        yield
        return
    tmp_path: Path = request.getfixturevalue("tmp_path")  # set up first, so it is torn down after this
    yield
    for archive in tmp_path.rglob(".study-buddy.sqlite3"):
        root = archive.parent
        for note in root.rglob("*.md"):
            hidden = any(part.startswith(".") for part in note.relative_to(root).parts)
            transcript = note.name.endswith(".transcript.md")
            if not hidden and not transcript and note.read_text().startswith("---\n"):
                check_note(note, root)
