"""Measures the core: --help time, input/archive checks, memory per worker, YouTube requests per video (on
both ways in: youtube-transcript-api, and yt-dlp's subtitle path on the bed's fake YouTube and proxy)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import responses

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studybuddy.config import Settings
from studybuddy.egress.sessions import ProxyEndpoint
from studybuddy.runs.admission import Admission
from studybuddy.runs.pipeline import Pipeline
from studybuddy.runs.workers import WorkerFactory
from studybuddy.store.archive import Archive
from studybuddy.youtube.inputs import read_inputs
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
    settings = Settings(output=root / "notes", notes=False, parallel=True, workers=4, links=False)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        youtube.install(mock)
        with Archive.open(settings.output) as archive:
            summary = Pipeline.from_settings(settings, archive).run(list(youtube.videos))
    return sum(youtube.per_video().values()) / summary.done


def ytdlp_requests_per_video(videos: int = 20) -> tuple[float, float] | None:
    """YouTube requests per video on yt-dlp's subtitle path alone, and on the fallback after a PO token
    (library first, then yt-dlp), counted by the fake YouTube; every manual track needs a PO token from the
    fake bgutil provider. None when port 443 cannot be bound (not root)."""
    from studybuddy.egress.sessions import new_session
    from studybuddy.proxyspec import parse_proxy
    from studybuddy.youtube.transcripts import SubtitleOptions, TranscriptFetcher
    from tests.bed.lock import bed_lock
    from tests.bed.proxies import FakeProxy
    from tests.bed.youtube_server import CERT_NAMES, FakeYouTube
    from tests.bed.youtube_site import SiteOptions, load_catalogue
    from tests.fakes.pot_provider import FakePotProvider

    catalogue = load_catalogue()
    ids = [
        vid
        for vid, entry in catalogue.items()
        if entry.case == "normal" and not entry.video.tracks[0].generated  # a manual track: a PO token
    ][:videos]
    means = []
    with bed_lock():
        try:
            youtube = FakeYouTube.start([], 443, client_addresses=["127.0.0.10"])
        except PermissionError:
            return None
        proxy = FakeProxy("http", ["127.0.0.22"], dict.fromkeys(CERT_NAMES, "127.0.0.10")).start()
        try:
            youtube.configure(site=SiteOptions(manual_po_tokens=True))
            with FakePotProvider() as provider:
                for first in ("ytdlp", "api"):
                    youtube.reset()
                    session = new_session(egress=parse_proxy(proxy.url()), ca_bundle=youtube.ca_bundle)
                    options = SubtitleOptions(first, provider.url)
                    fetcher = TranscriptFetcher(session, use_ytdlp=False, subtitles=options)
                    try:
                        for vid in ids:
                            fetcher.fetch(vid)
                    finally:
                        fetcher.close()
                        session.close()
                    counted = sum(1 for event in youtube.stats()["timeline"] if event[3] in ids)
                    means.append(counted / len(ids))
        finally:
            proxy.stop()
            youtube.stop()
    return means[0], means[1]


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
        ytdlp = ytdlp_requests_per_video()
        if ytdlp is None:
            print("yt-dlp path requests per video:              skipped (the bed's port 443 needs root)")
        else:
            print(f"yt-dlp path requests per video:              {ytdlp[0]:.2f}     (goal <= 5)")
            print(f"library, then yt-dlp after PoTokenRequired:  {ytdlp[1]:.2f}     (goal <= 5)")


if __name__ == "__main__":
    main()
