"""Measures the core: --help time, input/archive checks, memory per worker, YouTube requests per video."""

from __future__ import annotations

import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import responses

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studybuddy.admission import Admission
from studybuddy.archive import Archive
from studybuddy.config import Settings
from studybuddy.inputs import read_inputs
from studybuddy.output import OutputTree
from studybuddy.pipeline import Pipeline, WorkerFactory
from studybuddy.progress import ProgressMonitor
from studybuddy.sessions import ProxyEndpoint
from tests.fakes.youtube_mock import MockYouTube, video


def help_time() -> float:
    exe = Path(sys.executable).parent / "study-buddy"
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([str(exe), "--help"], check=True, capture_output=True)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def input_check_time(root: Path) -> tuple[float, int]:
    with Archive.open(root) as archive:
        for n in range(5_000):
            archive.record_done(f"vid{n:08d}", title=f"Lecture {n}")
    urls = root / "urls.txt"
    urls.write_text("\n".join(f"https://www.youtube.com/watch?v=vid{n:08d}&t=1s" for n in range(10_000)))
    started = time.perf_counter()
    inputs = read_inputs([], [urls])
    with Archive.open(root) as archive:
        rows = archive.get_many(inputs.video_ids)
        todo = [
            vid for vid in inputs.video_ids if Admission().skip_reason(rows.get(vid), time.time()) is None
        ]
    return time.perf_counter() - started, len(todo)


def memory_per_worker() -> float:
    """Python heap per extra worker (session + transcript client + identity), by tracemalloc."""
    factory = WorkerFactory(Settings(), proxy=ProxyEndpoint("127.0.0.1", 9050))
    workers = [factory()]  # the first one pays for imports
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    workers += [factory() for _ in range(16)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / 16 / 1024


def requests_per_video(root: Path) -> float:
    youtube = MockYouTube.of(video(n) for n in range(50))
    settings = Settings(output=root / "notes", notes=False, parallel=True, workers=4)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        youtube.install(mock)
        with Archive.open(settings.output) as archive:
            summary = Pipeline(
                settings,
                archive=archive,
                output=OutputTree(settings.output),
                engine=None,
                monitor=ProgressMonitor(),
                worker_factory=WorkerFactory(dataclasses.replace(settings), proxy=None),
            ).run(list(youtube.videos))
    return sum(youtube.per_video().values()) / summary.done


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        check_s, todo = input_check_time(root / "archive")
        print(f"study-buddy --help wall time (median of 5): {help_time():.3f} s   (goal < 0.3 s)")
        print(f"10,000-line file vs archive of 5,000 done:   {check_s:.3f} s   (goal < 1 s; {todo} to do)")
        print(f"memory per extra worker (16 workers):        {memory_per_worker():.0f} KiB  (goal < 5 MB)")
        print(
            f"YouTube requests per finished video:         {requests_per_video(root):.2f}     (goal 3, max 4)"
        )


if __name__ == "__main__":
    main()
