"""Shared by the UI's tests: an app on the ASGI test client, and a scripted runner that drives a real
`ProgressMonitor` through the run's `RunView` as `runner.run` does, at the pace the test chooses."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from starlette.testclient import TestClient

from studybuddy.config import Settings
from studybuddy.runs.admission import Admission
from studybuddy.runs.progress import ProgressMonitor, ProgressView
from studybuddy.runs.progress_records import Outcome, Stage
from studybuddy.runs.runner import RunOutcome
from studybuddy.ui.app import UiConfig, create_app
from studybuddy.ui.guard import allowed_hosts
from studybuddy.ui.runs import RunManager, Runner
from studybuddy.ui.watching import WatchService
from studybuddy.youtube.inputs import read_inputs

PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
TOKEN = "test-token-0123456789"


class ScriptedRunner:
    """Queues every video, moves each to fetching, then waits for `release` before finishing them:
    done, except the ids in `fail`. `started` is set once the run is in flight."""

    def __init__(self, fail: Sequence[str] = ()) -> None:
        self.fail = set(fail)
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls: list[tuple[Settings, list[str], Admission | None]] = []

    def __call__(
        self,
        settings: Settings,
        urls: Sequence[str],
        files: Sequence[Path],
        *,
        warn: Callable[[str], None],
        admission: Admission | None,
        stop: threading.Event,
        view: ProgressView,
    ) -> RunOutcome:
        inputs = read_inputs(urls, files)
        self.calls.append((settings, inputs.video_ids, admission))
        monitor = ProgressMonitor(view)
        monitor.start(inputs.video_ids, settings.thread_count)
        monitor.worker_info(0, exit_label="exit1 127.0.0.11", circuit_started=monitor.now())
        for video_id in inputs.video_ids:
            monitor.stage(video_id, Stage.FETCHING, worker=0)
        warn("scripted run in flight")
        self.started.set()
        assert self.release.wait(timeout=30), "the test never released the run"
        for video_id in inputs.video_ids:
            if video_id in self.fail:
                outcome = Outcome(video_id, Stage.FAILED, kind="permanent", reason="transcripts are disabled")
            else:
                outcome = Outcome(video_id, Stage.DONE, title=f"Title of {video_id}")
            monitor.finish(outcome, worker=0)
        monitor.close()
        return RunOutcome(monitor.summary(), tuple(inputs.bad))


def settings_for(tmp_path: Path, **changes: object) -> Settings:
    values: dict[str, object] = {"output": tmp_path / "notes", "tor": "off", "engine": "offline"}
    return Settings(**(values | changes))  # type: ignore[arg-type]


@contextmanager
def ui_client(
    settings: Settings, runner: Runner, *, login: bool = True, watch_runner: Runner | None = None
) -> Iterator[TestClient]:
    """The app on the test client, at the address a real server on PORT would have; logged in."""
    manager = RunManager(runner)
    watch = WatchService(settings, watch_runner or ScriptedRunner(), interval_s=600)

    async def shutdown() -> None:
        manager.stop_all()
        watch.stop()

    app = create_app(
        UiConfig(settings, TOKEN, allowed_hosts("127.0.0.1", PORT)), manager, watch, on_shutdown=shutdown
    )
    with TestClient(app, base_url=BASE, headers={"Origin": BASE}) as client:
        if login:
            client.get(f"/?token={TOKEN}")
        try:
            yield client
        finally:
            manager.stop_all()
            watch.stop()
            assert manager.join(timeout_s=30)
            watch.join(timeout_s=30)
