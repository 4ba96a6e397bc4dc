"""Tests for studybuddy.output: safe names, unique note paths, atomic writes."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from studybuddy.errors import OutputError
from studybuddy.store.output import CLAIMS_FOLDER, OutputTree, atomic_write_text, id_in_path, safe_filename

FORBIDDEN = set('/\\:*?"<>|')
INVISIBLE = set("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")
# Written out here rather than imported, so the test checks the module against an independent list.
RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{d}{n}" for d in ("COM", "LPT") for n in ["1", "2", "3", "4", "5", "6", "7", "8", "9", "¹", "²", "³"]
}


def assert_safe(name: str, max_bytes: int = 150) -> None:
    assert not FORBIDDEN & set(name)
    assert not INVISIBLE & set(name)
    assert all(unicodedata.category(c) not in ("Cc", "Cs") for c in name)
    assert len(name.encode("utf-8")) <= max_bytes
    assert name not in (".", "..")
    assert name == name.strip(". ")
    assert "  " not in name
    assert unicodedata.is_normalized("NFC", name)
    assert name.split(".", maxsplit=1)[0].rstrip(" ").upper() not in RESERVED


@given(st.text())
def test_any_text_gives_a_safe_name(title: str) -> None:
    assert_safe(safe_filename(title))


@given(
    st.text(alphabet=st.characters(exclude_categories=()), min_size=1),
    st.integers(min_value=16, max_value=64),
)
def test_any_text_fits_a_small_budget(title: str, max_bytes: int) -> None:
    assert_safe(safe_filename(title, max_bytes=max_bytes), max_bytes)


@given(st.sampled_from(sorted(RESERVED)), st.sampled_from(["", ".txt", ".tar.gz", " .md"]), st.booleans())
def test_reserved_names_get_a_suffix_in_any_case(stem: str, extension: str, lower: bool) -> None:
    title = (stem.lower() if lower else stem) + extension
    name = safe_filename(title)
    assert_safe(name)
    assert name.upper().startswith(stem.upper() + "_")


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("../../etc/passwd", "etc passwd"),
        ("..", ""),
        (".", ""),
        ("///", ""),
        ("   ", ""),
        ("CON", "CON_"),
        ("con.txt", "con_.txt"),
        ("Lpt1", "Lpt1_"),
        ("CONSOLE", "CONSOLE"),
        ("Lecture 1: Intro?", "Lecture 1 Intro"),
        ("a\tb\nc\x00d\x7fe\x85f", "a b c d e f"),
        ("\u202eevil\u202c.exe", "evil.exe"),
        ("\ufeffBOM title\u200f", "BOM title"),
        ("---", "---"),
        ("key: value", "key value"),
        ("...hidden", "hidden"),
        ("trailing. . .", "trailing"),
        ("🎓📚🧠", "🎓📚🧠"),
        ("👩\u200d🔬 science", "👩\u200d🔬 science"),
        ("Математика для всех", "Математика для всех"),
        ("数学入门 第一讲", "数学入门 第一讲"),
        ("e\u0301cole", "\u00e9cole"),
    ],
)
def test_attack_and_everyday_titles(title: str, expected: str) -> None:
    assert safe_filename(title) == expected


def test_long_title_is_cut_at_a_character_boundary() -> None:
    title = "é" * 300
    name = safe_filename(title)
    assert name == "é" * 75
    assert len(safe_filename("a" * 300)) == 150
    assert safe_filename("€" * 100, max_bytes=20) == "€" * 6


def test_cut_that_ends_in_a_space_or_dot_is_trimmed() -> None:
    assert safe_filename("a" * 149 + " b") == "a" * 149
    assert safe_filename("a" * 149 + ".b") == "a" * 149


def test_too_small_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        safe_filename("title", max_bytes=4)


# atomic_write_text


def test_atomic_write_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "note.md"
    atomic_write_text(target, "first\r\nline ✓")
    assert target.read_bytes() == "first\r\nline ✓".encode()
    atomic_write_text(target, "second")
    assert target.read_text(encoding="utf-8") == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["note.md"]


def test_disk_full_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "note.md"
    target.write_text("old content", encoding="utf-8")
    real_write = os.write
    calls = []

    def write_some_then_fail(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write_some_then_fail)
    with pytest.raises(OutputError) as caught:
        atomic_write_text(target, "x" * 100_000)
    assert str(caught.value) == f"{target}: {os.strerror(errno.ENOSPC)}"
    assert len(calls) == 2
    assert target.read_text(encoding="utf-8") == "old content"
    assert [p.name for p in tmp_path.iterdir()] == ["note.md"]


def test_failure_on_a_new_file_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", no_space)
    with pytest.raises(OutputError, match="No space left on device"):
        atomic_write_text(tmp_path / "new.md", "text")
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_removes_the_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "is-a-folder"
    target.mkdir()
    (target / "keep").write_text("x", encoding="utf-8")
    with pytest.raises(OutputError, match="is-a-folder"):
        atomic_write_text(target, "text")
    assert [p.name for p in tmp_path.iterdir()] == ["is-a-folder"]


def test_interrupt_during_write_removes_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(fd: int, data: bytes) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(tmp_path / "note.md", "text")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions, not root")
def test_permission_denied_is_an_output_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(OutputError, match=r"locked/note\.md: Permission denied"):
        atomic_write_text(locked / "note.md", "text")


def test_refused_temp_file_is_an_output_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: object, flags: int, mode: int = 0o777) -> int:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(OutputError) as caught:
        atomic_write_text(tmp_path / "note.md", "text")
    assert str(caught.value) == f"{tmp_path / 'note.md'}: Permission denied"
    assert list(tmp_path.iterdir()) == []


def test_text_that_is_not_unicode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="UTF-8"):
        atomic_write_text(tmp_path / "note.md", "bad \ud800 surrogate")
    assert list(tmp_path.iterdir()) == []


def test_new_file_permissions_follow_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "note.md"
    atomic_write_text(target, "text")
    old_mask = os.umask(0)
    os.umask(old_mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~old_mask


# OutputTree


def test_ensure_writable_creates_the_folder(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path / "a" / "b")
    tree.ensure_writable()
    assert (tmp_path / "a" / "b").is_dir()
    assert list((tmp_path / "a" / "b").iterdir()) == []


def test_ensure_writable_on_a_file_names_the_root(tmp_path: Path) -> None:
    blocker = tmp_path / "notes"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(OutputError, match=r"notes: output folder is not writable"):
        OutputTree(blocker).ensure_writable()


def test_note_path_from_title_and_subject(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path)
    assert tree.note_path("vid00000001", "Intro: Part 1", None, None) == tmp_path / "Intro Part 1.md"
    assert (
        tree.note_path("vid00000002", "Limits", "Math/Calculus", None)
        == tmp_path / "Math Calculus" / "Limits.md"
    )
    assert tree.note_path("vid00000003", None, None, None) == tmp_path / "vid00000003.md"
    assert tree.note_path("vid00000004", "///", None, None) == tmp_path / "vid00000004.md"


@pytest.mark.parametrize("video_id", ["../../../etc/x", "a/b", "..", "vid0000000\x00", "short", "x" * 12])
def test_an_id_that_is_not_a_video_id_never_becomes_part_of_a_path(tmp_path: Path, video_id: str) -> None:
    tree = OutputTree(tmp_path)
    for title in ("Intro", None):
        with pytest.raises(OutputError, match="not a YouTube video id"):
            tree.note_path(video_id, title, None, None)
    with pytest.raises(OutputError, match="not a YouTube video id"):
        id_in_path(video_id)
    assert id_in_path("-Ab_9cD0eF1") == "-Ab_9cD0eF1"


def test_same_video_gets_the_same_path_again(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path)
    first = tree.note_path("vid00000001", "Intro", None, None)
    first.write_text("---\nvideo_id: other\n---\n", encoding="utf-8")
    assert tree.note_path("vid00000001", "Intro", None, None) == first


def test_second_video_with_the_same_title_gets_its_id(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path)
    assert tree.note_path("vid00000001", "Intro", None, None) == tmp_path / "Intro.md"
    assert tree.note_path("vid00000002", "Intro", None, None) == tmp_path / "Intro [vid00000002].md"
    assert tree.note_path("vid00000003", "INTRO", None, None) == tmp_path / "INTRO [vid00000003].md"


def test_existing_file_of_another_video_is_not_taken(tmp_path: Path) -> None:
    (tmp_path / "Intro.md").write_text(
        "---\ntitle: Intro\nvideo_id: someoneelse\n---\nbody", encoding="utf-8"
    )
    (tmp_path / "Notes.md").write_text("my own notes, no front matter", encoding="utf-8")
    tree = OutputTree(tmp_path)
    assert tree.note_path("vid00000001", "Intro", None, None) == tmp_path / "Intro [vid00000001].md"
    assert tree.note_path("vid00000001", "Notes", None, None) == tmp_path / "Notes [vid00000001].md"


def test_existing_file_of_the_same_video_is_reused(tmp_path: Path) -> None:
    (tmp_path / "Intro.md").write_text(
        "---\ntitle: Intro\nvideo_id: 'vid00000001'\n---\nbody", encoding="utf-8"
    )
    assert OutputTree(tmp_path).note_path("vid00000001", "Intro", None, None) == tmp_path / "Intro.md"


def test_a_released_path_is_guarded_by_the_note_on_disk(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path)
    first = tree.note_path("vid00000001", "Intro", None, None)
    first.write_text("---\nvideo_id: vid00000001\n---\n", encoding="utf-8")
    tree.release(first, None)  # written: the reservation goes, the note's front matter stays
    assert tree.note_path("vid00000002", "Intro", None, None) == tmp_path / "Intro [vid00000002].md"
    assert tree.note_path("vid00000003", "Other", None, previous=first) == tmp_path / "Other.md"
    assert tree.note_path("vid00000001", "Intro", None, None) == first


def test_title_that_is_another_videos_fallback_name_still_gets_a_unique_path(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path)
    first = tree.note_path("vid00000001", "Intro [vid00000002]", None, None)
    tree.note_path("vid00000003", "Intro", None, None)
    second = tree.note_path("vid00000002", "Intro", None, None)
    assert first != second
    assert second == tmp_path / "Intro [vid00000002] (2).md"


def test_threads_with_the_same_title_get_different_paths(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path)
    barrier = threading.Barrier(8)
    paths: dict[str, Path] = {}

    def pick(video_id: str) -> None:
        barrier.wait(timeout=10)
        paths[video_id] = tree.note_path(video_id, "Same Title", None, None)

    threads = [threading.Thread(target=pick, args=(f"video{i:06d}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(paths) == 8
    assert len(set(paths.values())) == 8
    assert sum(path.name == "Same Title.md" for path in paths.values()) == 1


def choose_and_write(root: str, video_id: str, chosen: Any, barrier: Any) -> None:
    """One run (another process): choose a note's path, wait until the other run has chosen too, write."""
    tree = OutputTree(Path(root))
    path = tree.note_path(video_id, "Same Title", None, None)
    barrier.wait(timeout=60)
    tree.write(path, f"---\nvideo_id: {video_id}\n---\n\n# Same Title\n")
    tree.release(path)
    chosen.put((video_id, path.name))


def test_two_processes_with_the_same_title_never_pick_the_same_file(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier, chosen = context.Barrier(2), context.Queue()
    runs = [
        context.Process(target=choose_and_write, args=(str(tmp_path), video_id, chosen, barrier))
        for video_id in ("vid00000001", "vid00000002")
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=120)
    assert [run.exitcode for run in runs] == [0, 0]
    names = dict(chosen.get(timeout=5) for _ in runs)
    first = min(names, key=lambda video_id: len(names[video_id]))  # whichever chose first
    second = next(video_id for video_id in names if video_id != first)
    assert names == {first: "Same Title.md", second: f"Same Title [{second}].md"}
    for video_id, name in names.items():
        assert f"video_id: {video_id}\n" in (tmp_path / name).read_text()  # neither replaced the other
    assert list((tmp_path / CLAIMS_FOLDER).iterdir()) == []  # written and released: no claim left


def test_a_file_system_without_locks_still_gets_its_notes_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import fcntl

    def refuse(_file: object, _operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)
    tree = OutputTree(tmp_path)
    path = tree.note_path("vid00000001", "Intro", None, None)
    tree.write(path, "---\nvideo_id: vid00000001\n---\n")
    assert path.read_text().startswith("---\n")
    assert caplog.text.count("runs sharing it are not kept apart") == 1  # said once, not at every write


def test_a_name_another_run_has_chosen_is_not_taken_until_it_is_released(tmp_path: Path) -> None:
    other_run, this_run = OutputTree(tmp_path), OutputTree(tmp_path)  # two runs: nothing shared in memory
    taken = other_run.note_path("vid00000001", "Intro", None, None)
    assert this_run.note_path("vid00000002", "Intro", None, None) == tmp_path / "Intro [vid00000002].md"
    assert this_run.note_path("vid00000001", "Intro", None, previous=taken) == taken  # its own claim
    other_run.write(taken, "---\nvideo_id: vid00000001\n---\n")
    other_run.release(taken)
    assert this_run.note_path("vid00000003", "Intro", None, None) == tmp_path / "Intro [vid00000003].md"


def test_a_claim_of_a_run_that_died_is_kept_for_its_video_and_stale_for_others(tmp_path: Path) -> None:
    OutputTree(tmp_path).note_path("vid00000001", "Intro", None, None)  # the run dies before writing
    (claim,) = (tmp_path / CLAIMS_FOLDER).iterdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    data = json.loads(claim.read_text())
    data["by"] = f"{socket.gethostname()}:{int(dead.stdout)}:notes"  # a process that has ended
    claim.write_text(json.dumps(data))
    assert OutputTree(tmp_path).note_path("vid00000001", "Intro", None, None) == tmp_path / "Intro.md"
    claim.write_text(json.dumps(data))
    assert OutputTree(tmp_path).note_path("vid00000002", "Intro", None, None) == tmp_path / "Intro.md"


def test_previous_path_is_reused_even_if_the_title_changed(tmp_path: Path) -> None:
    previous = tmp_path / "Old Title.md"
    tree = OutputTree(tmp_path)
    assert tree.note_path("vid00000001", "New Title", "Subject", previous) == previous
    assert tree.note_path("vid00000002", "Old Title", None, None) == tmp_path / "Old Title [vid00000002].md"


def test_previous_path_outside_the_root_is_ignored(tmp_path: Path) -> None:
    root = tmp_path / "notes"
    tree = OutputTree(root)
    for previous in (tmp_path / "elsewhere.md", root / ".." / "escape.md", Path("/etc/passwd"), root):
        assert tree.note_path("vid00000001", "Title", None, previous) == root / "Title.md"


def test_previous_path_with_another_suffix_is_ignored(tmp_path: Path) -> None:
    tree = OutputTree(tmp_path)
    assert tree.note_path("vid00000001", "Title", None, tmp_path / "Title.txt") == tmp_path / "Title.md"
