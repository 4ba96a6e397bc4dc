"""Subjects: folder scores, names for new subjects, the automatic choice, and where it is recorded."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from studybuddy.config import Settings
from studybuddy.models import VideoMeta
from studybuddy.runs.progress import ProgressMonitor
from studybuddy.runs.runner import RunOutcome
from studybuddy.store.archive import Archive
from studybuddy.store.links import Linker
from studybuddy.store.subjects import SubjectChooser, folder_scores, new_subject_name, subject_of
from tests.fakes.youtube_mock import video
from tests.store.test_links import run_pipeline, topic_text, write_note


def test_folder_score_is_the_mean_of_its_best_three_and_top_level_notes_do_not_count() -> None:
    scores = folder_scores([("A", 0.9), ("A", 0.1), ("A", 0.5), ("A", 0.7), ("B", 0.4), (None, 1.0)])
    assert scores == pytest.approx({"A": 0.7, "B": 0.4})


@pytest.mark.parametrize(
    ("tags", "category", "text", "expected"),
    [
        (("maths", "onion routing"), "Education", "onion routing explained", "Onion routing"),
        (("maths",), "Science & Technology", "nothing in common", "Science & Technology"),
        (("maths/algebra",), None, "nothing", "Maths algebra"),
        ((), None, "nothing", "Unsorted"),
    ],
)
def test_new_subject_names(tags: tuple[str, ...], category: str | None, text: str, expected: str) -> None:
    name, reason = new_subject_name(VideoMeta("vid00000001", tags=tags, category=category), text)
    assert name == expected
    assert reason


def test_subject_of(tmp_path: Path) -> None:
    assert subject_of(tmp_path, tmp_path / "Bio" / "Leaves.md") == "Bio"
    assert subject_of(tmp_path, tmp_path / "Leaves.md") is None


def test_chooser_joins_a_similar_folder_else_starts_one_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(2):
        write_note(tmp_path / "Tor" / f"Tor {n}.md", f"tor{n:08d}", f"Tor {n}", topic_text("tor", n))
        write_note(tmp_path / "Bio" / f"Bio {n}.md", f"bio{n:08d}", f"Bio {n}", topic_text("bio", n))
    chooser = SubjectChooser(Linker(tmp_path))
    with caplog.at_level(logging.INFO, logger="studybuddy.store.subjects"):
        joined = chooser.choose(VideoMeta("vid00000001"), topic_text("bio", 5))
        started = chooser.choose(VideoMeta("vid00000002", category="Music"), "guitar chords strumming")
    assert joined.subject == "Bio" and "similar" in joined.reason
    assert started.subject == "Music" and "category 'Music'" in started.reason
    assert chooser.report_lines() == [f"  subject  {joined.describe()}", f"  subject  {started.describe()}"]
    assert "vid00000002 -> Music" in caplog.text
    outcome = RunOutcome(ProgressMonitor().summary(), (), None, tuple(chooser.report_lines()))
    assert "vid00000001 -> Bio" in outcome.report()
    assert outcome.to_json()["subjects"] == list(outcome.subjects)


def test_auto_subject_in_the_pipeline_is_recorded_in_front_matter_and_archive(tmp_path: Path) -> None:
    topics = {1: "bio", 2: "bio", 3: "tor"}
    keywords = {"bio": ("photosynthesis",), "tor": ("onion routing", "tor")}
    videos = [
        video(n, keywords=keywords[topic], segments=((0.0, 5.0, topic_text(topic, n)),))
        for n, topic in topics.items()
    ]
    settings = Settings(output=tmp_path / "notes", auto_subject=True, backoff_s=0.001)
    assert run_pipeline(settings, videos, auto_subject=True).done == 3
    with Archive.open(settings.output) as archive:
        subjects = {row.video_id: row.subject for row in archive.rows()}
    expected = {
        "vid00000001": "Photosynthesis",
        "vid00000002": "Photosynthesis",
        "vid00000003": "Onion routing",
    }
    assert subjects == expected
    for n in topics:
        note = tmp_path / "notes" / expected[f"vid{n:08d}"] / f"Lecture {n}.md"
        assert yaml.safe_load(note.read_text().split("---\n")[1])["subject"] == expected[f"vid{n:08d}"]
