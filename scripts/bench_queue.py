"""Shared queue benchmark (issue 15): prints claims per second with 8 processes on one PostgreSQL, the time to
check 100,000 done videos against the archive, the archive's added latency per video against SQLite, and
the double claims of a 10,000-claim stress run with random kills.

Everything runs on loopback: a PostgreSQL of its own (initdb in a temporary folder, as for the tests).
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.synchronize
import os
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

from studybuddy.runs.admission import Admission
from studybuddy.store.archive import Archive
from tests.pg_fixtures import PostgresServer, running_postgres

T0 = "2025-01-01T00:00:00.000+00:00"


def _claimer(url: str, root: str, owner: str, start: multiprocessing.synchronize.Event, out: str) -> None:
    """Take one video at a time until the queue is empty; write how many were taken."""
    with Archive.open(Path(root), url) as archive:
        start.wait()
        taken = 0
        while archive.take(owner, ttl_s=600, limit=1):
            taken += 1
    Path(out).write_text(str(taken))


def claims_per_second(server: PostgresServer, root: Path, processes: int, videos: int) -> float:
    url = server.create_database("bench_claims")
    with Archive.open(root, url) as archive:
        archive.enqueue([f"v{i:010d}" for i in range(videos)])
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    outs = [str(root / f"claims{n}") for n in range(processes)]
    workers = [
        context.Process(target=_claimer, args=(url, str(root), f"bench:{n}", start, outs[n]))
        for n in range(processes)
    ]
    for worker in workers:
        worker.start()
    time.sleep(3)  # let every process connect before the clock starts (a benchmark, not a test)
    began = time.perf_counter()
    start.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    total = sum(int(Path(out).read_text()) for out in outs)
    assert total == videos, f"{total} claims for {videos} videos"
    return total / elapsed


def check_done(archive: Archive, ids: list[str]) -> float:
    """The time a run takes to find which of its videos are done (all of them, here) and to skip them."""
    began = time.perf_counter()
    found = Admission().look_up(archive, ids)
    elapsed = time.perf_counter() - began
    assert len(found.done) == len(ids) and not found.rows
    return elapsed


def check_done_both(server: PostgresServer, root: Path, videos: int) -> tuple[float, float]:
    """(SQLite, PostgreSQL) seconds to check `videos` done videos against an archive holding them."""
    import psycopg

    ids = [f"d{i:010d}" for i in range(videos)]
    rows = [(video_id, "done", 1, T0, T0, f"Title {video_id}", f"Notes/{video_id}.md") for video_id in ids]
    columns = "video_id, status, attempts, first_seen_at, updated_at, title, note_path"
    Archive.open(root / "check").close()
    with sqlite3.connect(root / "check" / Archive.FILENAME) as db:
        db.executemany(f"INSERT INTO videos ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    url = server.create_database("bench_check")
    Archive.open(root, url).close()
    with (
        psycopg.connect(url) as db,
        db.cursor() as cursor,
        cursor.copy(f"COPY videos ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)
    with Archive.open(root / "check") as on_sqlite, Archive.open(root, url) as on_postgres:
        return check_done(on_sqlite, ids), check_done(on_postgres, ids)


def per_video_s(archive: Archive, videos: int) -> float:
    """The archive calls the pipeline makes for one video: claim, start, done, subject, release."""
    timings = []
    for number in range(videos):
        video_id = f"lat{number:08d}"
        began = time.perf_counter()
        archive.claim(video_id, "bench:lat", ttl_s=120)
        archive.start(video_id)
        archive.record_done(video_id, title="A title", note_path=archive.root / "A.md", elapsed_s=1.0)
        archive.record_subject(video_id, None)
        archive.release(video_id, "bench:lat")
        timings.append(time.perf_counter() - began)
    return statistics.median(timings)


def added_latency(server: PostgresServer, root: Path, videos: int) -> tuple[float, float]:
    with Archive.open(root / "sqlite") as archive:
        sqlite_s = per_video_s(archive, videos)
    with Archive.open(root / "pg", server.create_database("bench_latency")) as archive:
        postgres_s = per_video_s(archive, videos)
    return sqlite_s, postgres_s


def _stress(url: str, root: str, owner: str, log: str, ttl_s: float) -> None:
    """Take 1-5 videos at a time, note each claim (flushed before acting on it), finish them; until empty."""
    rng = random.Random(owner)
    with Archive.open(Path(root), url) as archive, Path(log).open("a") as out:
        while True:
            at = time.time()
            taken = archive.take(owner, ttl_s=ttl_s, limit=rng.randint(1, 5), now=at)
            if not taken and archive.unfinished() == 0:
                return
            for video_id in taken:
                out.write(f"{video_id} {owner} {at} {at + ttl_s}\n")
            out.flush()
            for video_id in taken:
                archive.start(video_id)
                archive.record_done(video_id, elapsed_s=0.0)
                archive.release(video_id, owner)
            if not taken:
                time.sleep(0.05)  # the rest is held by killed processes until their claims expire


def stress(
    server: PostgresServer, root: Path, videos: int, processes: int, ttl_s: float
) -> tuple[int, int, int]:
    """(double claims, kills, videos not done) of a run with a random process killed by -9 every ~0.3 s."""
    url = server.create_database("bench_stress")
    with Archive.open(root, url) as archive:
        archive.enqueue([f"s{i:010d}" for i in range(videos)])
    context = multiprocessing.get_context("spawn")
    logs = root / "stress"
    logs.mkdir()
    spawned = 0

    def spawn() -> multiprocessing.process.BaseProcess:
        nonlocal spawned
        spawned += 1
        owner = f"stress:{spawned}"
        process = context.Process(target=_stress, args=(url, str(root), owner, str(logs / owner), ttl_s))
        process.start()
        return process

    running = [spawn() for _ in range(processes)]
    rng = random.Random(15)
    kills = 0
    deadline = time.monotonic() + 600
    while any(process.is_alive() for process in running) and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.1, 0.5))
        alive = [process for process in running if process.is_alive()]
        if alive and kills < 20:
            victim = rng.choice(alive)
            os.kill(victim.pid, signal.SIGKILL)
            victim.join()
            kills += 1
            running = [process for process in running if process is not victim] + [spawn()]
    for process in running:
        process.join()
    takes: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for log in logs.iterdir():
        for line in log.read_text().splitlines():
            video_id, owner, at, expires = line.split()
            takes[video_id].append((float(at), float(expires), owner))
    doubles = 0
    for claims in takes.values():
        claims.sort()
        doubles += sum(1 for first, second in itertools.pairwise(claims) if second[0] < first[1])
    with Archive.open(root, url) as archive:
        left = archive.unfinished()
    return doubles, kills, left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--claims", type=int, default=20_000, help="videos claimed one at a time")
    parser.add_argument("--check", type=int, default=100_000, help="done videos checked at once")
    parser.add_argument("--latency-videos", type=int, default=300)
    parser.add_argument("--stress", type=int, default=10_000, help="videos of the stress run")
    args = parser.parse_args()
    with running_postgres() as server, tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        rate = claims_per_second(server, root, args.processes, args.claims)
        print(f"claims/s, {args.processes} processes, one PostgreSQL: {rate:,.0f} (goal >= 500)")
        on_sqlite, on_postgres = check_done_both(server, root, args.check)
        print(
            f"checking {args.check:,} done videos (what a rerun skips): PostgreSQL {on_postgres:.3f} s, "
            f"SQLite {on_sqlite:.3f} s (goal < 1 s)"
        )
        sqlite_s, postgres_s = added_latency(server, root, args.latency_videos)
        print(
            f"archive time per video (claim, start, done, subject, release), median: SQLite "
            f"{sqlite_s * 1000:.2f} ms, PostgreSQL {postgres_s * 1000:.2f} ms; added "
            f"{(postgres_s - sqlite_s) * 1000:+.2f} ms (goal < 10 ms)"
        )
        doubles, kills, left = stress(server, root, args.stress, args.processes, ttl_s=2.0)
        print(
            f"stress: {args.stress:,} videos, {kills} processes killed by -9: {doubles} double claims "
            f"(goal 0), {left} videos not done"
        )


if __name__ == "__main__":
    main()
