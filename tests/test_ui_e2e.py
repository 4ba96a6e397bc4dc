"""The web UI end to end in a real headless browser: Debian's chromium driven by Playwright (launched with
the system executable; Playwright downloads no browser), against `study-buddy ui` run as a user runs it,
on the test bed: the private Tor network, the fake HTTPS YouTube on the exits' addresses.

The browser may reach loopback only: every other request is aborted. Screenshots of the run page and of a
note page are kept in test-artifacts/ui/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, sync_playwright

from tests.bed.tornet import TorNetwork
from tests.bed.youtube_server import FakeYouTube
from tests.notecheck import front_matter
from tests.test_e2e_tor import NORMAL, SPECIAL, archive, cli_env, note_files, study_buddy

pytestmark = pytest.mark.network
CLI = str(Path(sys.executable).parent / "study-buddy")
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts" / "ui"
CHROMIUM = shutil.which("chromium")
FAILING = [SPECIAL["transcripts_disabled"], SPECIAL["unavailable"]]
VIDEOS = [*NORMAL[:8], *FAILING]
RUN_TIMEOUT_MS = 240_000

# Records every stage each video row showed, as the page changed (the live feed swaps the rows in).
STAGE_RECORDER = """
window.__stages = {};
window.__loaded = true;
const record = () => document.querySelectorAll("#videos tr[data-video]").forEach((row) => {
  const seen = window.__stages[row.dataset.video] || (window.__stages[row.dataset.video] = []);
  if (seen[seen.length - 1] !== row.dataset.stage) seen.push(row.dataset.stage);
});
record();
new MutationObserver(record).observe(document.getElementById("live"), {childList: true, subtree: true});
"""

# The contrast ratio (WCAG 2) of every element's text against the first opaque background behind it.
LOWEST_CONTRAST = """
() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 :
    Math.pow((v + 0.055) / 1.055, 2.4); }).reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (el) => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el)
    .backgroundColor); if (c.length === 3 || c[3] > 0) return c.slice(0, 3); } return [255, 255, 255]; };
  let lowest = [99, ""];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length) continue;
    const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < lowest[0]) lowest = [ratio, el.tagName + " " + el.textContent.trim().slice(0, 40)];
  }
  return lowest;
}
"""


@contextlib.contextmanager
def running_ui(tor_network: TorNetwork, fake_youtube: FakeYouTube, tmp_path: Path) -> Iterator[ServedUi]:
    """`study-buddy ui` on the bed (the settings the e2e CLI tests use, notes by the offline engine), until
    the block ends: then Ctrl-C, unless the block stopped it already."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (./scripts/test installs it)")
    env = cli_env(
        tor_network, fake_youtube, tmp_path, {"STUDY_BUDDY_NOTES": "true", "STUDY_BUDDY_ENGINE": "offline"}
    )
    process = subprocess.Popen(
        [CLI, "ui", "--no-browser", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline().strip()
    try:
        assert first.startswith("study-buddy ui: http://127.0.0.1:"), first + (
            process.stderr.read() if process.stderr else ""
        )
        yield ServedUi(process, first.removeprefix("study-buddy ui: "))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            _out, err = process.communicate(timeout=120)
            assert "Traceback" not in err, err


@dataclass
class ServedUi:
    process: subprocess.Popen[str]
    url: str  # with its token


@pytest.fixture
def ui_server(tor_network: TorNetwork, fake_youtube: FakeYouTube, tmp_path: Path) -> Iterator[str]:
    """The UI's address with its token; stopped with Ctrl-C afterwards."""
    with running_ui(tor_network, fake_youtube, tmp_path) as served:
        yield served.url


@contextlib.contextmanager
def browser_tab(url: str) -> Iterator[Page]:
    """A headless chromium tab on `url` that may reach loopback only."""
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})

        def loopback_only(route: Route) -> None:
            host = urlsplit(route.request.url).hostname
            if host == "127.0.0.1":
                route.continue_()
            else:
                route.abort()

        context.route("**/*", loopback_only)
        tab = context.new_page()
        tab.goto(url)
        yield tab
        browser.close()


@pytest.fixture
def page(ui_server: str) -> Iterator[Page]:
    with browser_tab(ui_server) as tab:
        yield tab


def start_run(page: Page, videos: list[str], workers: int) -> None:
    """Fill the new-run form and submit it; returns on the run's page."""
    page.fill("#urls", "\n".join(videos))
    page.check("#parallel")
    page.fill("#workers", str(workers))
    page.select_option("#engine", "offline")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/runs/\w+$"))


def wait_for_run(page: Page) -> None:
    page.wait_for_selector("#run-state[data-state=finished]", timeout=RUN_TIMEOUT_MS)


def test_a_run_from_the_form_through_tor_live_notes_links_and_a_retry(
    page: Page, fake_youtube: FakeYouTube
) -> None:
    fake_youtube.configure(latency=0.3)  # slow enough that the rows are seen moving
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    assert page.title() == "New run · study-buddy"
    start_run(page, VIDEOS, workers=4)
    page.evaluate(STAGE_RECORDER)
    wait_for_run(page)

    stages: dict[str, list[str]] = page.evaluate("window.__stages")
    assert page.evaluate("window.__loaded === true")  # never reloaded: live
    assert set(stages) == set(VIDEOS)
    final = {video: seen[-1] for video, seen in stages.items()}
    assert final == {video: "failed" if video in FAILING else "done" for video in VIDEOS}
    moved = [video for video, seen in stages.items() if len(seen) > 1]
    assert moved, f"no row changed while the page was open: {stages}"
    assert "10 videos in" in page.inner_text("pre.report")
    page.screenshot(path=str(ARTIFACTS / "run.png"), full_page=True)
    assert page.evaluate(LOWEST_CONTRAST)[0] >= 4.5

    page.click("nav >> text=Notes")
    page.click("main li a >> nth=0")
    page.wait_for_selector("article.note")
    assert page.locator(".front-matter dt", has_text="video_id").count() == 1
    assert page.evaluate(LOWEST_CONTRAST)[0] >= 4.5
    page.screenshot(path=str(ARTIFACTS / "note.png"), full_page=True)
    note_url = page.url
    wiki = page.locator("a.wikilink").first
    target = wiki.get_attribute("href") or ""
    wiki.click()
    page.wait_for_url("**" + target)
    assert page.locator("article.note").count() == 1 and page.url != note_url

    stamp = page.locator("article.note a[href^='/video/']").first
    href = stamp.get_attribute("href") or ""
    second = int(href.rsplit("=", 1)[1])
    stamp.click()
    page.wait_for_url(re.compile(r"/video/"))
    youtube_link = page.get_attribute("#open-video", "href") or ""
    assert youtube_link.endswith(f"&t={second}s")
    current = page.locator("ol.captions li[aria-current=true]")
    assert current.count() == 1 and int((current.get_attribute("id") or "")[1:]) <= second

    page.click("nav >> text=Archive")
    page.select_option("#f-status", "failed")
    page.click("form.filters button")
    failed_rows = page.locator("#archive tbody tr")
    assert sorted(failed_rows.evaluate_all("rows => rows.map(r => r.dataset.video)")) == sorted(FAILING)
    retried = FAILING[0]
    assert page.inner_text(f"tr[data-video='{retried}'] td:nth-child(5)").startswith("1 ")
    page.click(f"button[aria-label='Retry {retried}']")
    page.wait_for_url(re.compile(r"/runs/\w+$"))
    wait_for_run(page)
    assert "1 video in" in page.inner_text("pre.report")
    page.goto(page.url.split("/runs/")[0] + "/archive?status=failed")
    attempts = page.inner_text(f"tr[data-video='{retried}'] td:nth-child(5)")
    assert attempts.startswith("2")  # tried again; still permanent


def test_ctrl_c_with_a_run_in_progress_finishes_the_videos_in_progress_and_a_rerun_does_the_rest(
    tor_network: TorNetwork, fake_youtube: FakeYouTube, tmp_path: Path
) -> None:
    fake_youtube.configure(latency=0.3)
    videos = NORMAL[:16]
    with running_ui(tor_network, fake_youtube, tmp_path) as served, browser_tab(served.url) as page:
        start_run(page, videos, workers=2)
        page.wait_for_selector("#videos tr[data-stage=done]", timeout=RUN_TIMEOUT_MS)
        served.process.send_signal(signal.SIGINT)
        stdout, stderr = served.process.communicate(timeout=120)
    assert served.process.returncode == 130, stdout + stderr
    assert "Traceback" not in stdout + stderr
    rows = archive(tmp_path)
    done = {str(row["video_id"]) for row in rows if row["status"] == "done"}
    assert 1 <= len(done) < len(videos), rows  # stopped halfway: the videos in progress were finished
    assert [row["video_id"] for row in rows if row["claimed_by"] is not None] == []
    assert notes_of(tmp_path) == done  # one complete note for every video done, and none for the others

    fake_youtube.reset()
    rerun = study_buddy(tor_network, fake_youtube, tmp_path, "--parallel", "--", *videos)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert notes_of(tmp_path) == set(videos)
    assert {row["video_id"] for row in archive(tmp_path) if row["status"] == "done"} == set(videos)
    assert not set(fake_youtube.stats()["videos"]) & done  # nothing finished before was fetched again


def notes_of(tmp_path: Path) -> set[str]:
    """The videos with a note file (each has exactly one)."""
    owners = Counter(front_matter(path.read_text())["video_id"] for path in note_files(tmp_path))
    assert all(count == 1 for count in owners.values()), owners
    return set(owners)


def test_every_control_is_reached_by_the_keyboard(page: Page) -> None:

    controls = set(
        page.evaluate(
            "[...document.querySelectorAll('main input, main select, main textarea, main button, nav a')]"
            ".map((el) => el.id || el.name || el.textContent.trim())"
        )
    )
    reached = set()
    for _ in range(len(controls) + 10):
        page.keyboard.press("Tab")
        reached.add(
            page.evaluate(
                "(() => { const el = document.activeElement;"
                " return el.id || el.name || el.textContent.trim(); })()"
            )
        )
    assert controls <= reached, controls - reached
