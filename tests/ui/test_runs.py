"""Tests for studybuddy.ui.runs: runs in threads the manager owns, one per folder, coalesced wake-ups."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from studybuddy.ui.runs import FolderBusy, RunManager, RunView, Subscriber
from tests.ui_support import ScriptedRunner, settings_for


def test_one_run_per_folder_and_another_folder_is_free(tmp_path: Path) -> None:
    runner = ScriptedRunner()
    manager = RunManager(runner)
    first = manager.start(settings_for(tmp_path), ["dQw4w9WgXcQ"], [], label="one")
    assert runner.started.wait(10)
    with pytest.raises(FolderBusy, match=r"is busy: run \w+ is still working on it"):
        manager.start(
            settings_for(tmp_path, output=tmp_path / "notes" / "."), ["dQw4w9WgXcQ"], [], label="two"
        )
    assert manager.busy(tmp_path / "notes") is first
    runner.release.set()
    assert manager.join(timeout_s=30)
    assert first.state == "finished" and first.outcome is not None and first.outcome.summary.done == 1
    assert manager.busy(tmp_path / "notes") is None


def test_stop_all_reaches_every_run_and_join_waits_for_them(tmp_path: Path) -> None:
    runner = ScriptedRunner()
    manager = RunManager(runner)
    runs = [manager.start(settings_for(tmp_path / str(n)), ["dQw4w9WgXcQ"], [], label="x") for n in range(2)]
    assert runner.started.wait(10)
    manager.stop_all()
    assert [run.state for run in runs] == ["stopping", "stopping"]
    assert all(run.stop.is_set() for run in runs)
    runner.release.set()
    assert manager.join(timeout_s=30)
    assert manager.runs()[0].started_at >= manager.runs()[1].started_at  # newest first


def test_a_subscriber_is_woken_once_however_many_events_came() -> None:
    async def scenario() -> int:
        view = RunView()
        subscriber = Subscriber(asyncio.get_running_loop())
        view.subscribe(subscriber)
        scheduled = 0
        original = subscriber._loop.call_soon_threadsafe

        def counting(callback: object, *args: object) -> object:
            nonlocal scheduled
            scheduled += 1
            return original(callback, *args)  # type: ignore[arg-type]

        subscriber._loop.call_soon_threadsafe = counting  # type: ignore[method-assign,assignment]
        for _ in range(1000):
            view.changed()
        await subscriber.wait(5)
        view.changed()  # after a read, the next change wakes it again
        await subscriber.wait(5)
        view.unsubscribe(subscriber)
        view.changed()  # unsubscribed: schedules nothing
        return scheduled

    assert asyncio.run(scenario()) == 2


def test_the_chart_keeps_a_bounded_number_of_points(tmp_path: Path) -> None:
    from studybuddy.runs.progress import ProgressMonitor
    from studybuddy.runs.progress_records import Outcome, Stage
    from studybuddy.ui.runs import CHART_POINTS

    view = RunView()
    monitor = ProgressMonitor(view)
    ids = [f"vid{n:08d}" for n in range(3 * CHART_POINTS)]
    monitor.start(ids, 1)
    for video_id in ids:
        monitor.finish(Outcome(video_id, Stage.DONE))
    points = view.points()
    assert len(points) <= CHART_POINTS + 1
    assert points[0] == (0.0, 0) and points[-1][1] == len(ids)
    assert [n for _, n in points] == sorted(n for _, n in points)
