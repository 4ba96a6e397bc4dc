"""Related notes: TF-IDF similarity, the marked block, backlinks, concurrency, and a whole pipeline run."""

from __future__ import annotations

import dataclasses
import multiprocessing
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
import yaml

from studybuddy.config import Settings
from studybuddy.models import NoteBody, Transcript, VideoMeta
from studybuddy.runs.pipeline import Pipeline
from studybuddy.runs.progress_records import Summary
from studybuddy.schema import StudyNote
from studybuddy.store import links as links_module
from studybuddy.store.archive import Archive
from studybuddy.store.links import (
    RELATED_END,
    RELATED_START,
    Link,
    Linker,
    MalformedBlockError,
    TfIdfIndex,
    block_links,
    replace_related_block,
    tokenize,
)
from studybuddy.store.output import TREE_LOCK_FILENAME, OutputTree
from tests.fakes.youtube_mock import MockYouTube, video
from tests.fakes.youtube_pages import FakeVideo

WIKI_LINK = re.compile(r"\[\[(.+?)(?:\|[^\]|]*)?\]\]")

TOPICS = {
    "tor": "tor circuit relay exit onion routing encryption guard node consensus directory authority",
    "bio": "photosynthesis chlorophyll leaf plant sunlight glucose carbon dioxide oxygen stomata enzyme",
}


def topic_text(topic: str, n: int) -> str:
    """Text on a topic: its shared vocabulary, rotated so each note differs, plus a word of its own."""
    words = TOPICS[topic].split()
    shift = n % len(words)
    return " ".join(words[shift:] + words[:shift]) + f" distinct{chr(97 + n)}word"


def write_note(path: Path, video_id: str, title: str, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    front = yaml.safe_dump({"title": title, "video_id": video_id}, allow_unicode=True)
    path.write_text(f"---\n{front}---\n\n# {title}\n\n{body}\n")
    return path


def links_in(path: Path) -> list[str]:
    return WIKI_LINK.findall(path.read_text())


def assert_links_resolve(root: Path) -> int:
    """Every `[[target|alias]]` in the tree names an existing note (by unique stem or folder/stem)."""
    notes = [
        p for p in root.rglob("*.md") if not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    stems: dict[str, list[Path]] = {}
    for note in notes:
        stems.setdefault(note.stem.casefold(), []).append(note)
    count = 0
    for note in notes:
        for target in links_in(note):
            count += 1
            if "/" in target:
                assert (root / f"{target}.md").is_file(), f"{note}: [[{target}]] names no file"
            else:
                assert len(stems.get(target.casefold(), [])) == 1, f"{note}: [[{target}]] is not one file"
    return count


# -- similarity ----------------------------------------------------------------------------------------


def test_tokenize_drops_stop_words_urls_and_plurals() -> None:
    text = "The Circuits of https://youtu.be/abc?t=3 relays, and THE guard nodes; 42 x"
    assert tokenize(text) == ["circuit", "relay", "guard", "node"]


def test_tfidf_ranks_same_topic_first_and_applies_the_threshold() -> None:
    index = TfIdfIndex()
    for n in range(3):
        index.add(Path(f"/t/tor{n}"), tokenize(topic_text("tor", n)))
        index.add(Path(f"/t/bio{n}"), tokenize(topic_text("bio", n)))
    found = index.similar(tokenize(topic_text("tor", 5)), threshold=0.1)
    assert [key.name for key, _ in found] == sorted(key.name for key, _ in found if "tor" in key.name)
    assert {key.name for key, _ in found} == {"tor0", "tor1", "tor2"}
    assert all(0.1 < score <= 1.0 for _, score in found)
    assert index.similar(["unrelated", "words"]) == []


def test_tfidf_cosine_is_symmetric_and_one_for_identical_documents() -> None:
    index = TfIdfIndex()
    index.add(Path("/a"), tokenize(topic_text("tor", 1)))
    index.add(Path("/b"), tokenize(topic_text("tor", 1)))
    index.add(Path("/c"), tokenize(topic_text("bio", 2)))
    assert index.cosine(Path("/a"), Path("/b")) == pytest.approx(1.0)
    assert index.cosine(Path("/a"), Path("/c")) == index.cosine(Path("/c"), Path("/a")) == 0.0
    index.remove(Path("/b"))
    assert Path("/b") not in index and len(index) == 2
    assert index.cosine(Path("/a"), Path("/b")) == 0.0


# -- the marked block ----------------------------------------------------------------------------------

LINKS = [Link("Lecture 2", "Lecture 2: relays"), Link("Bio/Leaves", "Leaves")]


def test_block_is_appended_then_rewritten_in_place_keeping_user_text() -> None:
    note = "# Note\n\nBody.\n"
    first = replace_related_block(note, LINKS)
    assert first.startswith("# Note\n\nBody.\n\n" + RELATED_START)
    assert "- [[Lecture 2|Lecture 2: relays]]\n- [[Bio/Leaves|Leaves]]\n" + RELATED_END in first
    edited = first.replace("Body.", "Body, edited by me.") + "\nMy own footer.\n"
    second = replace_related_block(edited, LINKS[:1])
    assert "Body, edited by me." in second and second.endswith(RELATED_END + "\n\nMy own footer.\n")
    assert block_links(second) == LINKS[:1]
    assert replace_related_block(second, LINKS[:1]) == second  # idempotent


def test_an_empty_block_is_removed_and_no_block_means_no_change() -> None:
    note = "# Note\n\nBody.\n"
    assert replace_related_block(note, []) == note
    assert replace_related_block(replace_related_block(note, LINKS), []) == note


@pytest.mark.parametrize(
    "text", [f"a\n{RELATED_START}\nb\n", f"a\n{RELATED_END}\n", f"{RELATED_START}\n" * 2]
)
def test_unbalanced_markers_are_refused(text: str) -> None:
    with pytest.raises(MalformedBlockError):
        replace_related_block(text, LINKS)


# -- the linker ----------------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    for n in range(2):
        write_note(root / f"Tor {n}.md", f"tor{n:08d}", f"Tor {n}", topic_text("tor", n))
        write_note(root / f"Bio {n}.md", f"bio{n:08d}", f"Bio {n}", topic_text("bio", n))
    (root / "Bio 0.transcript.md").write_text("# not a note: no front matter\n")
    return root


def test_new_note_links_its_topic_and_gets_backlinks(tree: Path) -> None:
    new = write_note(tree / "Tor 9.md", "tor00000009", "Tor 9: exits", topic_text("tor", 9))
    related = Linker(tree).link(new)
    assert sorted(path.name for path in related) == ["Tor 0.md", "Tor 1.md"]
    assert sorted(links_in(new)) == ["Tor 0", "Tor 1"]
    assert "[[Tor 9|Tor 9: exits]]" in (tree / "Tor 0.md").read_text()
    assert links_in(tree / "Bio 0.md") == []
    assert assert_links_resolve(tree) == 4


def test_rerun_is_idempotent_and_user_edits_outside_the_block_survive(tree: Path) -> None:
    new = write_note(tree / "Tor 9.md", "tor00000009", "Tor 9", topic_text("tor", 9))
    Linker(tree).link(new)
    snapshot = {path: path.read_text() for path in tree.glob("*.md")}
    Linker(tree).link(new)  # a second run: a new linker reads the tree again
    assert {path: path.read_text() for path in tree.glob("*.md")} == snapshot
    old = tree / "Tor 0.md"
    old.write_text(old.read_text().replace("# Tor 0", "# Tor 0 (my edit)") + "\nmy footer\n")
    Linker(tree).link(new)
    assert old.read_text().count("[[Tor 9|Tor 9]]") == 1
    assert "# Tor 0 (my edit)" in old.read_text() and old.read_text().endswith("my footer\n")


def test_an_edit_made_after_the_index_was_built_is_kept(tree: Path) -> None:
    linker = Linker(tree)
    linker.link(write_note(tree / "Tor 8.md", "tor00000008", "Tor 8", topic_text("tor", 8)))
    old = tree / "Tor 0.md"
    old.write_text(old.read_text() + "\nwritten by another program\n")  # e.g. Obsidian, meanwhile
    linker.link(write_note(tree / "Tor 9.md", "tor00000009", "Tor 9", topic_text("tor", 9)))
    text = old.read_text()
    assert "written by another program" in text
    assert text.count("[[Tor 8|Tor 8]]") == 1 and text.count("[[Tor 9|Tor 9]]") == 1


def test_a_note_with_broken_markers_is_left_alone(tree: Path) -> None:
    old = tree / "Tor 0.md"
    old.write_text(old.read_text() + f"\n{RELATED_START}\nhalf a block\n")
    before = old.read_text()
    new = write_note(tree / "Tor 9.md", "tor00000009", "Tor 9", topic_text("tor", 9))
    Linker(tree).link(new)
    assert old.read_text() == before
    assert "Tor 0" in links_in(new)


def test_the_tree_is_read_once_per_run(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    linker = Linker(tree)
    scans: list[int] = []
    original = linker._note_files

    def counted() -> Iterator[Path]:
        scans.append(1)
        return original()

    monkeypatch.setattr(linker, "_note_files", counted)
    for n in range(5, 8):
        linker.link(write_note(tree / f"Tor {n}.md", f"tor{n:08d}", f"Tor {n}", topic_text("tor", n)))
    assert scans == [1]
    assert sorted(links_in(tree / "Tor 7.md")) == ["Tor 0", "Tor 1", "Tor 5", "Tor 6"]  # this run's notes too


def test_same_stem_in_two_folders_links_by_folder(tree: Path) -> None:
    write_note(tree / "A" / "Circuits.md", "cir00000001", "Circuits A", topic_text("tor", 3))
    write_note(tree / "B" / "Circuits.md", "cir00000002", "Circuits B", topic_text("tor", 4))
    new = write_note(tree / "Tor 9.md", "tor00000009", "Tor 9", topic_text("tor", 9))
    Linker(tree, top_k=10).link(new)
    assert {"A/Circuits", "B/Circuits"} <= set(links_in(new))
    assert "[[Tor 9|Tor 9]]" in (tree / "A" / "Circuits.md").read_text()
    assert_links_resolve(tree)


def test_without_write_links_nothing_is_written(tree: Path) -> None:
    new = write_note(tree / "Tor 9.md", "tor00000009", "Tor 9", topic_text("tor", 9))
    before = {path: path.read_text() for path in tree.glob("*.md")}
    linker = Linker(tree, write_links=False)
    assert len(linker.link(new)) == 2
    assert {path: path.read_text() for path in tree.glob("*.md")} == before
    assert {note.title for note, _ in linker.similar(topic_text("bio", 7))} == {"Bio 1", "Bio 0"}


def test_concurrent_writers_never_lose_or_duplicate_a_backlink(tree: Path) -> None:
    linker = Linker(tree, top_k=20)
    paths = [
        write_note(tree / f"Tor {n}.md", f"tor{n:08d}", f"Tor {n}", topic_text("tor", n))
        for n in range(2, 10)
    ]
    barrier = threading.Barrier(len(paths))

    def link(path: Path) -> None:
        barrier.wait()
        linker.link(path)

    threads = [threading.Thread(target=link, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    targets = links_in(tree / "Tor 0.md")
    assert sorted(targets) == sorted(path.stem for path in paths)  # every new note, once
    for path in paths:
        others = set(links_in(path))
        assert len(others) == len(links_in(path)) and path.stem not in others
        assert all(f"[[{path.stem}|" in (tree / f"{other}.md").read_text() for other in others)  # both ways
    assert assert_links_resolve(tree) > 0
    assert not list(tree.glob(".*.tmp"))


def write_in_another_process(root: str, path: str, text: str) -> None:
    """A note write of another run (or of `notes regenerate`), as the pipeline does it."""
    OutputTree(Path(root)).write(Path(path), text)


def flock_waiters(path: Path) -> set[int]:
    """The processes waiting for an flock on `path`: Linux lists them in /proc/locks, marked `->`."""
    inode = path.stat().st_ino
    waiting = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1:3] == ["->", "FLOCK"] and int(fields[6].rsplit(":", 1)[1]) == inode:
            waiting.add(int(fields[5]))
    return waiting


@pytest.mark.skipif(not Path("/proc/locks").is_file(), reason="needs Linux's /proc/locks")
def test_a_note_written_while_a_backlink_goes_in_is_never_overwritten_by_the_old_note(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tree / "Tor 0.md"
    rewritten = old.read_text().replace("# Tor 0", "# Tor 0, written again")  # --force, or regenerate
    read_it, go_on = threading.Event(), threading.Event()
    real_write = links_module.atomic_write_text

    def write_after_a_pause(path: Path, text: str) -> None:
        if path == old:  # the backlink: Tor 0 was read, its new text is ready, not yet written
            read_it.set()
            go_on.wait(timeout=30)
        real_write(path, text)

    monkeypatch.setattr(links_module, "atomic_write_text", write_after_a_pause)
    new = write_note(tree / "Tor 9.md", "tor00000009", "Tor 9", topic_text("tor", 9))
    linking = threading.Thread(target=Linker(tree).link, args=(new,))
    linking.start()
    assert read_it.wait(timeout=30)
    writer = multiprocessing.get_context("spawn").Process(
        target=write_in_another_process, args=(str(tree), str(old), rewritten)
    )
    writer.start()
    lock_file = tree / TREE_LOCK_FILENAME
    while writer.is_alive() and writer.pid not in flock_waiters(lock_file):
        writer.join(timeout=0.01)
    assert writer.is_alive() and old.read_text() != rewritten  # the other write waits for the backlink...
    go_on.set()
    linking.join(timeout=30)
    writer.join(timeout=30)
    assert writer.exitcode == 0
    assert old.read_text() == rewritten  # ... and then replaces the note: nothing puts the old one back


# -- through the pipeline ------------------------------------------------------------------------------


class TopicEngine:
    """A note engine that writes the transcript back as the note's body."""

    name = "topic"

    def check(self) -> None:
        """Always works."""

    def generate(self, meta: VideoMeta, transcript: Transcript) -> NoteBody:
        return NoteBody(StudyNote(summary=transcript.text), model="topic-model")

    def close(self) -> None:
        """Nothing to close."""


def run_pipeline(settings: Settings, videos: list[FakeVideo], *, auto_subject: bool = False) -> Summary:
    """Run the pipeline (with a linker, and a subject chooser if asked) on a faked YouTube."""
    youtube = MockYouTube.of(videos)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        youtube.install(mock)
        with Archive.open(settings.output) as archive:
            settings = dataclasses.replace(settings, auto_subject=auto_subject)
            return Pipeline.from_settings(settings, archive, engine=TopicEngine()).run(list(youtube.videos))


def test_six_notes_on_two_topics_link_within_their_topic(tmp_path: Path) -> None:
    topics = {n: "tor" if n % 2 else "bio" for n in range(1, 7)}
    videos = [video(n, segments=((0.0, 5.0, topic_text(topics[n], n)),)) for n in topics]
    settings = Settings(output=tmp_path / "notes", parallel=True, workers=3, backoff_s=0.001)
    summary = run_pipeline(settings, videos)
    assert summary.done == 6
    root = tmp_path / "notes"
    for n, topic in topics.items():
        note = root / f"Lecture {n}.md"
        linked = {int(target.split()[-1]) for target in links_in(note)}
        assert linked == {m for m in topics if topics[m] == topic and m != n}, note.read_text()
        yaml.safe_load(note.read_text().split("---\n")[1])  # the front matter is untouched
    assert assert_links_resolve(root) == 12
