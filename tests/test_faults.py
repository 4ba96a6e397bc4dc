"""Faults a long job meets: a full disk, hostile titles, and secrets that must never be written anywhere."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from click.testing import CliRunner

from studybuddy.cli.main import cli
from studybuddy.store.archive import Archive
from studybuddy.store.archive_rows import Status
from tests.fakes.anthropic_server import API_KEY, MODEL, FakeAnthropic
from tests.fakes.youtube_mock import MockYouTube, video
from tests.notecheck import front_matter

HOSTILE_TITLES = [
    "../../etc/passwd",
    "CON",
    "x" * 300,
    "🎓📚🔥",
    "\u202eevil\u202c title \u200f",
    "---\ntitle: injected\n---",
    "key: value: more",
    "quote \" and ' and \\",
]


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as requests_mock:
        requests_mock.add_passthru("http://127.0.0.1")
        yield requests_mock


def test_hostile_titles_give_safe_files_and_valid_front_matter(
    tmp_path: Path, mock: responses.RequestsMock
) -> None:
    youtube = MockYouTube.of(video(n, title=title) for n, title in enumerate(HOSTILE_TITLES))
    youtube.install(mock)
    output = tmp_path / "out"
    result = CliRunner().invoke(cli, ["--no-notes", "-o", str(output), *youtube.videos])
    assert result.exit_code == 0, result.output
    files = [path for path in output.rglob("*") if path.is_file() and not path.name.startswith(".")]
    assert len(files) == 2 * len(HOSTILE_TITLES)  # a note and a transcript each, nothing elsewhere
    assert not (tmp_path / "etc").exists()
    seen = set()
    for path in files:
        assert path.parent == output.resolve() or path.parent == output
        assert len(path.name.encode()) <= 255
        assert not set(path.name) & set('<>:"/\\|?*\u202e\u200f')
        if not path.name.endswith(".transcript.md"):
            seen.add(front_matter(path.read_text())["title"])
    assert seen == set(HOSTILE_TITLES)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs (root only); skipped where mounting is not allowed."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_full_disk_stops_the_run_without_a_partial_note(
    tiny_disk: Path, mock: responses.RequestsMock
) -> None:
    long_transcript = tuple((float(i), 1.0, f"sentence number {i} " + "word " * 40) for i in range(800))
    youtube = MockYouTube.of([video(1), video(2, segments=long_transcript), video(3)])
    youtube.install(mock)
    output = tiny_disk / "notes"
    first = CliRunner().invoke(cli, ["--no-notes", "-o", str(output), "vid00000001"])
    assert first.exit_code == 0, first.output
    filler = tiny_disk / "filler"
    free = os.statvfs(tiny_disk).f_bavail * os.statvfs(tiny_disk).f_frsize
    # room for the archive's writes (the row, its claim and the queue's indexes, in the WAL), not for video 2
    filler.write_bytes(b"\0" * max(0, free - 128 * 1024))
    result = CliRunner().invoke(cli, ["--no-notes", "-o", str(output), "vid00000002", "vid00000003"])
    assert result.exit_code == 1, result.output
    assert "Stopped early" in result.output and "No space left on device" in result.output, result.output
    assert "Traceback" not in result.output
    assert not [p for p in output.iterdir() if p.name.startswith("Lecture 2")]  # no partial note
    assert not [p for p in output.iterdir() if p.name.endswith(".tmp")]
    with Archive.open(output) as archive:
        row = archive.get("vid00000002")
        assert row is None or row.status is Status.RUNNING  # not done, not failed: the rerun redoes it
    filler.unlink()
    rerun = CliRunner().invoke(cli, ["--no-notes", "-o", str(output), "vid00000002", "vid00000003"])
    assert rerun.exit_code == 0, rerun.output
    assert (output / "Lecture 2.md").is_file()


def test_secrets_never_reach_files_archive_logs_or_debug_output(
    tmp_path: Path,
    mock: responses.RequestsMock,
    fake_anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    control_password = "tor-control-secret-4242"
    youtube = MockYouTube.of([video(1), video(2, tracks=())])
    youtube.install(mock)
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("STUDY_BUDDY_TOR_PASSWORD", control_password)
    output = tmp_path / "notes"
    result = CliRunner().invoke(
        cli,
        ["--debug", "--model", MODEL, "--keep-temp", "-o", str(output), "vid00000001", "vid00000002"],
        catch_exceptions=False,
    )
    assert result.exit_code == 1  # video 2 has no transcript
    everything = result.output + "".join(
        path.read_bytes().decode("utf-8", "replace") for path in output.rglob("*") if path.is_file()
    )
    assert "DEBUG" in result.output  # the debug logs were there to be checked
    for secret in (API_KEY, control_password):
        assert secret not in everything
