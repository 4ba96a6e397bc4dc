"""`--order shortest` vs `--order playlist`: when a video's time grows with its length (notes take longer
for longer videos), shortest-first finishes more videos sooner. Prints videos finished over time.

The fake YouTube is in-process (`responses`); a video's captions answer takes 20 ms per minute of video.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

import requests
import responses

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studybuddy.config import Settings
from studybuddy.runs.pipeline import Pipeline
from studybuddy.runs.progress import ProgressMonitor
from studybuddy.runs.progress_records import Summary
from studybuddy.store.archive import Archive
from studybuddy.youtube.expand import order_videos
from tests.fakes.youtube_mock import CAPTIONS, MockYouTube, video

VIDEOS, WORKERS, SECONDS_PER_MINUTE_OF_VIDEO = 40, 4, 0.02


class FinishTimes:
    """A progress view that notes when each video finished."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.times: list[float] = []

    def start(self, monitor: ProgressMonitor) -> None:
        self.started = time.monotonic()

    def update(self, monitor: ProgressMonitor) -> None:
        finished = monitor.snapshot(max_rows=0).finished
        while len(self.times) < finished:
            self.times.append(time.monotonic() - self.started)

    def stop(self, summary: Summary) -> None:
        return None


def run(order: str, root: Path, durations: dict[str, float]) -> list[float]:
    youtube = MockYouTube.of(video(n, length_seconds=int(durations[f"vid{n:08d}"])) for n in range(VIDEOS))
    settings = Settings(output=root / order, notes=False, parallel=True, workers=WORKERS, links=False)
    view = FinishTimes()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        youtube.install(mock)
        captions = next(r for r in mock.registered() if r.url == CAPTIONS)
        answer = captions.callback  # type: ignore[attr-defined]

        def slow_captions(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
            video_id = request.url.split("v=")[1].split("&")[0] if request.url else ""
            time.sleep(durations[video_id] / 60 * SECONDS_PER_MINUTE_OF_VIDEO)
            return answer(request)  # type: ignore[no-any-return]

        captions.callback = slow_captions  # type: ignore[attr-defined]
        ordered = order_videos(list(youtube.videos), durations, order)
        with Archive.open(settings.output) as archive:
            Pipeline.from_settings(settings, archive, monitor=ProgressMonitor(view)).run(ordered)
    return view.times


def main() -> None:
    rng = random.Random(7)
    durations = {f"vid{n:08d}": rng.choice([5, 10, 15, 45, 60, 90, 120]) * 60.0 for n in range(VIDEOS)}
    with tempfile.TemporaryDirectory() as tmp:
        results = {order: run(order, Path(tmp), durations) for order in ("playlist", "shortest")}
    total = results["playlist"][-1]
    print(f"{VIDEOS} videos of 5-120 minutes, {WORKERS} workers; the playlist-order run takes {total:.1f} s")
    print("| order | done at 25% of that time | done at 50% | mean time to a finished video |")
    print("|---|---|---|---|")
    for order, times in results.items():
        quarter = sum(t <= total / 4 for t in times)
        half = sum(t <= total / 2 for t in times)
        print(f"| {order} | {quarter} | {half} | {sum(times) / len(times):.1f} s |")


if __name__ == "__main__":
    main()
