"""Scale: expanding a 5,000-video playlist through Tor, checking 5,000 videos against the archive, and
whether memory stays flat while processing (no per-video state kept beyond the archive row)."""

from __future__ import annotations

import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import responses

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.bedctl import running_bed
from studybuddy.config import Settings, parse_host_port
from studybuddy.egress.sessions import Identity, ProxyEndpoint, new_run_id, new_session
from studybuddy.runs.admission import Admission
from studybuddy.runs.pipeline import Pipeline
from studybuddy.runs.progress import ProgressMonitor
from studybuddy.store.archive import Archive
from studybuddy.youtube.expand import list_videos
from tests.fakes.youtube_mock import MockYouTube, video

SCALE_PLAYLIST = "https://www.youtube.com/playlist?list=PLstudybuddyScale00000000000005000"


def expansion_through_tor() -> tuple[float, int]:
    with running_bed() as bed:
        socks = ProxyEndpoint(*parse_host_port(f"{bed.tor.socks[0]}:{bed.tor.socks[1]}", "socks"))
        session = new_session(
            identity=Identity.first(new_run_id(), 0), proxy=socks, ca_bundle=bed.youtube.ca_bundle
        )
        started = time.perf_counter()
        videos = list_videos(SCALE_PLAYLIST, session)
        return time.perf_counter() - started, len(videos)


def archive_check(root: Path, ids: list[str]) -> float:
    with Archive.open(root) as archive:
        for vid in ids:
            archive.record_done(vid)
    started = time.perf_counter()
    with Archive.open(root) as archive:
        rows = archive.get_many(ids)
        todo = [vid for vid in ids if Admission().skip_reason(rows.get(vid), time.time()) is None]
    assert not todo
    return time.perf_counter() - started


def retained_memory(root: Path, count: int) -> float:
    """Heap (MiB) that study-buddy still holds after processing `count` videos with 4 workers, no notes:
    the fake YouTube and `responses` (which records every call) are left out of the count."""
    youtube = MockYouTube.of(video(n, segments=((0.0, 1.0, "hello"),)) for n in range(count))
    settings = Settings(output=root / f"notes{count}", notes=False, parallel=True, workers=4, links=False)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        youtube.install(mock)
        tracemalloc.start(10)
        with Archive.open(settings.output) as archive:
            pipeline = Pipeline.from_settings(
                settings,
                archive,
                monitor=ProgressMonitor(all_outcomes=False),  # as a run without --json
            )
            pipeline.run(list(youtube.videos))
            mock.calls.reset()  # `responses` keeps every request and response: not ours to count
            for registered in mock.registered():
                registered.calls.reset()
            gc.collect()
            snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
    harness = [
        tracemalloc.Filter(False, pattern, all_frames=True)
        for pattern in ("*/responses/*", "*/tests/*", "*/unittest/*")
    ]
    return sum(stat.size for stat in snapshot.filter_traces(harness).statistics("filename")) / 2**20


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seconds, listed = expansion_through_tor()
        print(f"5,000-video playlist expanded through Tor: {seconds:.2f} s ({listed} videos, pages of 100)")
        ids = [f"vid{n:08d}" for n in range(5_000)]
        print(f"archive check of 5,000 done videos:        {archive_check(root / 'archive', ids):.3f} s")
        small, large = retained_memory(root, 500), retained_memory(root, 2_000)
        print(f"heap held after   500 videos:              {small:.1f} MiB")
        per_video_kib = (large - small) * 1024 / 1_500
        print(
            f"heap held after 2,000 videos:              {large:.1f} MiB ({per_video_kib:.2f} KiB per video)"
        )


if __name__ == "__main__":
    main()
