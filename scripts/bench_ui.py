"""The web UI's goals, measured: a run of 5,000 queued videos watched in headless chromium.

The server is the real app (`studybuddy.ui`) on loopback in a child process, with a synthetic runner that
drives the real `ProgressMonitor` through the run's `RunView` as fast as a busy run would (hundreds of
events a second), so the numbers are the page's and the feed's, not Tor's. Printed:
- first render of the run page: server time (HTTP) and in the browser (navigation to first contentful paint);
- live updates per tab per second (goal: at most 10), and the longest main-thread task the browser saw
  (PerformanceObserver "longtask"; goal: none over 100 ms);
- the server's resident memory with the run going, before and after 10 tabs opened the page (goal: the 10
  tabs add under 100 MB). Each tab is in a browser profile of its own, so each has its own feed: the
  worst case for the server (the tabs of one profile share one feed through a shared worker).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if TYPE_CHECKING:
    from playwright.sync_api import Page

VIDEOS = 5000
WORKERS = 8
EVENTS_PER_S = 200  # stage changes the synthetic run makes a second
WATCH_S = 5.0
TABS = 10


def synthetic_runner(settings, urls, files, *, warn, admission, stop, view):  # type: ignore[no-untyped-def]
    """Queue every video, then move them through fetching to done at EVENTS_PER_S until stopped."""
    from studybuddy.runs.progress import ProgressMonitor
    from studybuddy.runs.progress_records import Outcome, Stage
    from studybuddy.runs.runner import RunOutcome
    from studybuddy.youtube.inputs import read_inputs

    ids = read_inputs(urls, files).video_ids
    monitor = ProgressMonitor(view, all_outcomes=False)
    monitor.start(ids, WORKERS)
    for worker in range(WORKERS):
        monitor.worker_info(
            worker, exit_label=f"exit{worker} 127.0.0.{11 + worker}", circuit_started=monitor.now()
        )
    pause = 2.0 / EVENTS_PER_S
    for number, video_id in enumerate(ids):
        if stop.wait(pause):
            break
        monitor.stage(video_id, Stage.FETCHING, worker=number % WORKERS)
        monitor.finish(Outcome(video_id, Stage.DONE, title=f"Video {number}"), worker=number % WORKERS)
    monitor.close()
    return RunOutcome(monitor.summary(), ())


def serve(output: Path) -> None:
    """The child: the app with the synthetic runner on a free port; prints its address."""
    import uvicorn

    from studybuddy.config import Settings
    from studybuddy.ui.app import UiConfig, create_app
    from studybuddy.ui.guard import allowed_hosts
    from studybuddy.ui.runs import RunManager
    from studybuddy.ui.server import bind
    from studybuddy.ui.watching import WatchService

    settings = Settings(output=output, tor="off", engine="offline")
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    manager = RunManager(synthetic_runner)

    async def shutdown() -> None:
        manager.stop_all()

    app = create_app(
        UiConfig(settings, "bench", allowed_hosts("127.0.0.1", port)),
        manager,
        WatchService(settings, synthetic_runner),
        on_shutdown=shutdown,
    )
    print(f"http://127.0.0.1:{port}/?token=bench", flush=True)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1)
    with contextlib.suppress(KeyboardInterrupt):  # the parent ends the child with SIGINT
        uvicorn.Server(config).run(sockets=[sock])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# Counts the live part's replacements, and the main thread's long tasks (over 50 ms) from now on.
COUNTER = """
window.__updates = 0;
window.__since = performance.now();
window.__longest = 0;
new PerformanceObserver((list) => list.getEntries().forEach((e) => {
  window.__longest = Math.max(window.__longest, e.duration); })).observe({type: "longtask"});
new MutationObserver(() => { window.__updates += 1; })
  .observe(document.getElementById("live"), {childList: true});
"""
# When the page first painted content (ms from the start of the navigation).
FIRST_PAINT = """
new Promise((done) => new PerformanceObserver((list) => list.getEntries().forEach((e) => {
  if (e.name === "first-contentful-paint") done(e.startTime); })).observe({type: "paint", buffered: true}))
"""
# The longest task while the page loaded (buffered entries: the parse and first layout of the page).
LOAD_TASKS = """
new Promise((done) => new PerformanceObserver((list) => done(Math.max(0, ...list.getEntries()
  .map((e) => e.duration)))).observe({type: "longtask", buffered: true})).then((v) => v)
"""


def measure(url: str, server_pid: int, say: Callable[[str], None]) -> None:
    from playwright.sync_api import Route, sync_playwright

    chromium = shutil.which("chromium")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])

        def loopback_only(route: Route) -> None:
            if route.request.url.startswith("http://127.0.0.1:"):
                route.continue_()
            else:
                route.abort()

        def new_tab() -> Page:
            """A tab in a browser profile of its own: its own feed (tabs of one profile share one)."""
            context = browser.new_context()
            context.route("**/*", loopback_only)
            tab = context.new_page()
            tab.goto(url)  # the token becomes the profile's cookie
            return tab

        context = new_tab().context
        base = url.split("?", maxsplit=1)[0].rstrip("/")
        ids = "\n".join(f"b{n:010d}" for n in range(VIDEOS))
        form = {"urls": ids, "parallel": "on", "workers": str(WORKERS), "languages": "en", "tor": "off"}
        started_run = context.request.post(
            base + "/runs", form=form, headers={"Origin": base}, max_redirects=0
        )
        assert started_run.status == 303, started_run.text()
        run_url = base + started_run.headers["location"]
        rss_no_tabs = rss_mb(server_pid)

        started = time.perf_counter()
        response = context.request.get(run_url)
        server_ms = (time.perf_counter() - started) * 1000
        assert response.ok
        # One tab alone: what a student sees.
        alone = new_tab()
        alone.goto(run_url)
        paint = alone.evaluate(FIRST_PAINT)
        load_task = alone.evaluate(LOAD_TASKS)
        rate_alone, longest_alone = watch([alone])[0]
        alone.context.close()
        # Ten tabs at once: the server's memory and every tab's rate.
        tabs = [new_tab() for _ in range(TABS)]
        for tab in tabs:
            tab.goto(run_url)
        measured = watch(tabs)
        rss_tabs = rss_mb(server_pid)
        state = tabs[0].inner_text("#counts")
        browser.close()
    rates = [rate for rate, _ in measured]
    say(f"run of {VIDEOS} videos, {EVENTS_PER_S} stage changes/s; after the measures: {state}")
    say(f"run page first render: server {server_ms:.1f} ms (goal < 300 ms); first paint {paint:.0f} ms")
    say(f"one tab: {rate_alone:.1f} live updates/s (goal <= 10/s)")
    say(
        f"  longest main-thread task: {longest_alone:.0f} ms while it took updates for {WATCH_S:g} s, "
        f"{load_task:.0f} ms while it loaded (goal: none over 100 ms; 0: none over 50 ms, the least reported)"
    )
    say(
        f"{TABS} tabs: live updates per tab max {max(rates):.1f}/s, mean {sum(rates) / len(rates):.1f}/s; "
        f"longest main-thread task {max(task for _, task in measured):.0f} ms (all tabs share 2 cores)"
    )
    say(
        f"server memory: {rss_no_tabs:.1f} MB with the run, {rss_tabs:.1f} MB with {TABS} tabs watching: "
        f"+{rss_tabs - rss_no_tabs:.1f} MB (goal < 100 MB)"
    )


def watch(tabs: list[Page]) -> list[tuple[float, float]]:
    """(live updates a second, longest main-thread task in ms) of each tab over WATCH_S seconds."""
    for tab in tabs:
        tab.evaluate(COUNTER)
    tabs[0].wait_for_timeout(WATCH_S * 1000)  # the window the rates are counted over
    rate = "window.__updates * 1000 / (performance.now() - window.__since)"
    return [(tab.evaluate(rate), tab.evaluate("window.__longest")) for tab in tabs]


def startup_time(say: Callable[[str], None], tries: int = 3) -> None:
    """`study-buddy ui` from exec to its first page served: the best of `tries` (others share the cores)."""
    times = [_start_once() for _ in range(tries)]
    say(
        f"study-buddy ui start to first page: best {min(times) * 1000:.0f} ms of {tries}, "
        f"worst {max(times) * 1000:.0f} ms (goal < 1 s)"
    )


def _start_once() -> float:
    import urllib.request

    cli = str(Path(sys.executable).parent / "study-buddy")
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        process = subprocess.Popen(
            [cli, "ui", "--no-browser", "--port", "0", "--tor", "off", "-o", folder],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdout is not None
        url = process.stdout.readline().split(": ", 1)[1].strip()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(url, timeout=10) as page:
            page.read()
        elapsed = time.perf_counter() - started
        process.send_signal(2)
        process.communicate(timeout=30)
    return elapsed


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return
    print(f"load average before: {Path('/proc/loadavg').read_text().split()[0]} (2 cores)")
    startup_time(print)
    with tempfile.TemporaryDirectory() as folder:
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", folder], stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            measure(url, server.pid, print)
        finally:
            server.send_signal(2)
            server.wait(timeout=60)


if __name__ == "__main__":
    threading.current_thread().name = "bench-ui"
    main(sys.argv[1:])
