"""Tests for studybuddy.ui.library and the notes, video and archive pages, over notes that a real run
(`runner.run` with the offline engine, YouTube faked through `responses`) wrote from the UI's form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from starlette.testclient import TestClient

from studybuddy.runs.runner import run
from studybuddy.ui.library import Library, split_front_matter, youtube_moment
from tests.fakes.youtube_mock import MockYouTube, video
from tests.fakes.youtube_pages import UNAVAILABLE, FakeVideo
from tests.ui_support import settings_for, ui_client

SENTENCES = [
    "Photosynthesis turns light energy into chemical energy stored in glucose.",
    "The chloroplast is the organelle where photosynthesis happens in plant cells.",
    "Chlorophyll absorbs red and blue light and reflects green light.",
    "The light reactions split water and release oxygen as a by-product.",
    "The Calvin cycle fixes carbon dioxide into sugars using ATP and NADPH.",
    "Stomata are pores in the leaf that let carbon dioxide in and water vapour out.",
    "The rate of photosynthesis depends on light intensity, temperature and carbon dioxide.",
    "Plants store the glucose they make as starch in their leaves and roots.",
]


def lecture(number: int) -> FakeVideo:
    lines = SENTENCES[number % 3 :] + SENTENCES[: number % 3]
    segments = tuple((10.0 * i, 9.0, text) for i, text in enumerate(lines * 2))
    return video(number, title=f"Photosynthesis part {number}", segments=segments, length_seconds=200)


@pytest.fixture
def youtube() -> Iterator[MockYouTube]:
    fake = MockYouTube.of([lecture(1), lecture(2), lecture(3), video(4, playability=dict(UNAVAILABLE))])
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake.install(mock)
        yield fake


def run_from_the_form(client: TestClient, ids: list[str]) -> str:
    answer = client.post(
        "/runs",
        data={
            "urls": "\n".join(ids),
            "workers": "1",
            "languages": "en",
            "tor": "off",
            "notes": "on",
            "assessment": "on",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    location = str(answer.headers["location"])
    with client.stream("GET", location + "/events") as feed:
        for line in feed.iter_lines():
            if line == "event: end":
                break
    return client.get(location).text


def links(html: str, css_class: str | None = None) -> list[str]:
    pattern = rf'<a class="{css_class}" href="([^"]+)"' if css_class else r'<a href="([^"]+)"'
    return re.findall(pattern, html)


def test_a_run_from_the_form_writes_notes_that_read_well_in_the_browser(
    tmp_path: Path, youtube: MockYouTube
) -> None:
    ids = ["vid00000001", "vid00000002", "vid00000003", "vid00000004"]
    with ui_client(settings_for(tmp_path), run) as client:
        page = run_from_the_form(client, ids)
        assert 'data-state="finished"' in page
        assert "4 videos in" in page and "3 done" in page and "1 failed" in page

        notes = client.get("/notes").text
        titles = re.findall(r'<li><a href="/notes/[^"]+">([^<]+)</a></li>', notes)
        assert sorted(titles) == ["Photosynthesis part 1", "Photosynthesis part 2", "Photosynthesis part 3"]

        first = links(notes)[[*titles].index("Photosynthesis part 1") + 6]  # after the 6 menu links
        note = client.get(first).text
        assert "<dt>video_id</dt><dd>vid00000001</dd>" in note  # the front matter as a header
        assert '<details class="callout callout-question">' in note  # review questions fold, closed
        stamps = re.findall(r'href="(/video/vid00000001\?t=\d+)"', note)
        assert stamps, "no timestamp link"
        wiki = links(note, "wikilink")
        assert wiki, "no wiki link to a related note"
        related = client.get(wiki[0])
        assert related.status_code == 200 and "Photosynthesis part" in related.text

        moment = client.get(stamps[-1]).text
        second = int(stamps[-1].rsplit("=", 1)[1])
        assert f"t={second}s" in moment  # the link that opens the video at that second
        assert 'aria-current="true"' in moment  # the transcript line of that moment is marked


def test_the_archive_filters_searches_and_retries_a_failed_video(
    tmp_path: Path, youtube: MockYouTube
) -> None:
    with ui_client(settings_for(tmp_path), run) as client:
        run_from_the_form(client, ["vid00000001", "vid00000004"])
        failed = client.get("/archive?status=failed").text
        assert re.findall(r'data-video="([^"]+)"', failed) == ["vid00000004"]
        assert "video is unavailable" in failed and "permanent" in failed
        done = client.get("/archive?q=photosynthesis").text
        assert re.findall(r'data-video="([^"]+)"', done) == ["vid00000001"]
        assert client.get("/archive?status=nonsense").status_code == 400
        assert youtube.requests_for("vid00000004") == 2  # watch page and player, once
        youtube.videos["vid00000004"] = lecture(4)  # the video is back
        answer = client.post(
            "/archive/retry", data={"video_id": "vid00000004", "kind": "permanent"}, follow_redirects=False
        )
        assert answer.status_code == 303
        with client.stream("GET", str(answer.headers["location"]) + "/events") as feed:
            for line in feed.iter_lines():
                if line == "event: end":
                    break
        rows = client.get("/archive?status=done").text
        assert sorted(re.findall(r'data-video="([^"]+)"', rows)) == ["vid00000001", "vid00000004"]
        nothing = client.post("/archive/retry", data={"kind": "all"})
        assert nothing.status_code == 400 and "Nothing to retry" in nothing.text


def test_usage_shows_what_archive_stats_prints(tmp_path: Path, youtube: MockYouTube) -> None:
    with ui_client(settings_for(tmp_path), run) as client:
        run_from_the_form(client, ["vid00000001"])
        assert "videos: 1  done: 1" in client.get("/usage").text


def test_paths_outside_the_output_folder_are_not_notes(tmp_path: Path) -> None:
    (tmp_path / "secret.md").write_text("# secret\n")
    (tmp_path / "notes").mkdir()
    library = Library(tmp_path / "notes")
    assert library.file("../secret.md") is None
    assert library.file("%2e%2e/secret.md") is None
    assert library.render("../secret.md") is None


def test_front_matter_and_youtube_moments() -> None:
    assert split_front_matter("---\ntitle: A\n---\n# A\n") == ({"title": "A"}, "# A\n")
    assert split_front_matter("---\n: [\n---\nbody") == ({}, "---\n: [\n---\nbody")
    assert split_front_matter("no front matter") == ({}, "no front matter")
    assert youtube_moment("https://youtu.be/dQw4w9WgXcQ?t=75") == ("dQw4w9WgXcQ", 75)
    assert youtube_moment("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=9s") == ("dQw4w9WgXcQ", 9)
    assert youtube_moment("https://example.org/?t=3") is None
    assert youtube_moment("notes/other.md") is None
