"""Throughput benchmark on the test bed: study-buddy against two baselines, for 1, 2, 4 and 8 workers.

The fake YouTube answers after ``--latency`` seconds and limits each exit to the same budget the clients
are given (``--budget`` videos per ``--window`` seconds; the server's window is a little shorter, so that
network jitter between a client's count and the server's does not turn a polite client into a blocked one).

Strategies, each on fresh SOCKS credentials, a fresh output folder and zeroed server statistics:

- study-buddy: the real CLI, ``--parallel --workers W --no-notes``, its per-exit budget = the server's;
- sequential rotation: one video at a time, new SOCKS credentials (a new circuit) for every video;
- shared session: W threads share one ``requests.Session`` and transcript client (one circuit, one exit),
  guarded by a lock, since the library is not thread-safe.

The baselines use the product's own ``TranscriptFetcher`` and sessions, learn their exit the way the
product does (``pacing.probe_exit``) and stay polite: they wait while their exit is over budget.

Before anything is measured, study-buddy runs once (not measured): on a freshly bootstrapped private
network Tor's first new circuits stall for seconds now and then (the first run on a fresh bed is ~10%
slower at W=1), which is the bed warming up, not the strategy under test.

Throughput is measured in the steady state, from the fake server's timeline: the first ``E * budget``
videos (what fresh exits allow at once) are left out, so the burst of a fresh start does not count, and
the rate is the slope of a line fitted to the rest of the finishes.
Prints a Markdown table and saves a PNG plot.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bedctl import CLI, EXITS, ROOT, Bed, running_bed, say

from studybuddy.egress.circuits import probe_exit
from studybuddy.egress.sessions import Identity, ProxyEndpoint, new_run_id, new_session
from studybuddy.egress.tor import TorController
from studybuddy.errors import FetchError
from studybuddy.youtube.transcripts import TranscriptFetcher
from tests.bed.youtube_server import Limit
from tests.bed.youtube_site import load_catalogue

WORKER_COUNTS = (1, 2, 4, 8)
STRATEGIES = ("study-buddy", "sequential rotation", "shared session")
SERVER_WINDOW_SHARE = 0.8  # the server forgets a use this much sooner than the clients do
BLOCK_FOR_S = 10.0
CELL_TIMEOUT_S = 180.0
CALIBRATION_VIDEOS = 6
MAX_WAITS_PER_VIDEO = 1000  # a polite wait loop is bounded too


@dataclass(frozen=True)
class Config:
    latency: float
    budget: int
    window: float
    videos: Sequence[str]

    @property
    def exit_limit_per_min(self) -> float:
        return EXITS * self.budget / self.window * 60

    @property
    def burst(self) -> int:
        """Videos fresh exits allow at once: left out of the steady-state rate."""
        return EXITS * self.budget


@dataclass(frozen=True)
class Cell:
    strategy: str
    workers: int
    done: int
    per_min: float
    requests_per_video: float
    blocks: int


class ExitWindows:
    """The baselines' politeness: at most ``budget`` videos per exit in any sliding ``window``."""

    def __init__(self, budget: int, window: float) -> None:
        self._budget, self._window = budget, window
        self._uses: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def take(self, exit_fingerprint: str) -> float:
        """Count a use now and return 0, or return the seconds to wait before asking again."""
        with self._lock:
            now = time.monotonic()
            uses = self._uses[exit_fingerprint]
            while uses and uses[0] <= now - self._window:
                uses.popleft()
            if len(uses) < self._budget:
                uses.append(now)
                return 0.0
            return uses[0] + self._window - now


class Client:
    """One SOCKS identity with its session, transcript client and exit probe, for the baselines."""

    def __init__(self, bed: Bed, tor: TorController, identity: Identity, windows: ExitWindows) -> None:
        self.proxy = ProxyEndpoint(*bed.tor.socks)
        self.identity = identity
        self._tor, self._windows = tor, windows
        self.session = new_session(identity=identity, proxy=self.proxy, ca_bundle=bed.youtube.ca_bundle)
        self.fetcher = TranscriptFetcher(self.session, use_ytdlp=False)

    def fetch_politely(self, video_id: str) -> bool:
        """Wait until this circuit's exit has budget, then fetch; False when the fetch failed."""
        for _ in range(MAX_WAITS_PER_VIDEO):
            relay = probe_exit(self._tor, self.identity, self.proxy)
            wait_s = self._windows.take(relay.fingerprint) if relay else 1.0
            if wait_s == 0:
                break
            time.sleep(wait_s)
        try:
            self.fetcher.fetch(video_id)
        except FetchError:
            return False
        return True

    def close(self) -> None:
        self.fetcher.close()
        self.session.close()


def run_study_buddy(bed: Bed, config: Config, workers: int, extra: Sequence[str] = ()) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-notes-") as output:  # no exit history from a past cell
        args = ["--parallel", "--workers", str(workers), "--per-exit", f"{config.budget}/{config.window:g}s"]
        args += extra
        args += ["--exit-interval", "0s", "--exit-cooldown", f"{BLOCK_FOR_S:g}s", "--", *config.videos]
        result = subprocess.run(
            [CLI, *args],
            env=bed.cli_env(Path(output), notes=False),
            capture_output=True,
            text=True,
            timeout=CELL_TIMEOUT_S,
            check=False,
        )
    if result.returncode != 0:
        say(f"study-buddy exited with {result.returncode}:\n{result.stdout[-1500:]}{result.stderr[-1500:]}")


def run_mixed_pool(bed: Bed, config: Config, workers: int) -> None:
    """study-buddy on Tor and the bed's three fixed proxies at once (`--egress tor,proxies`)."""
    proxies = (bed.proxies.socks, bed.proxies.http, bed.proxies.https)
    run_study_buddy(
        bed, config, workers, ["--egress", "tor,proxies", *(f"--proxy={p.url()}" for p in proxies)]
    )


def run_sequential(bed: Bed, config: Config, _workers: int) -> None:
    windows = ExitWindows(config.budget, config.window)
    with contextlib.closing(TorController.connect(control=bed.tor.control)) as tor:
        identity = Identity.first(new_run_id(), 0)
        for video_id in config.videos:
            client = Client(bed, tor, identity, windows)
            try:
                client.fetch_politely(video_id)
            finally:
                client.close()
            identity = identity.next()


def run_shared_session(bed: Bed, config: Config, workers: int) -> None:
    windows = ExitWindows(config.budget, config.window)
    lock = threading.Lock()  # the transcript client is not thread-safe
    with contextlib.closing(TorController.connect(control=bed.tor.control)) as tor:
        client = Client(bed, tor, Identity.first(new_run_id(), 0), windows)

        def fetch(video_id: str) -> bool:
            with lock:
                return client.fetch_politely(video_id)

        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(fetch, config.videos, timeout=CELL_TIMEOUT_S))
        finally:
            client.close()


RUNNERS: dict[str, Callable[[Bed, Config, int], None]] = {
    "study-buddy": run_study_buddy,
    "sequential rotation": run_sequential,
    "shared session": run_shared_session,
    "mixed pool": run_mixed_pool,
}
MIXED_PROXIES = 3  # the mixed pool: Tor's exits and this many proxies, each paced as one identity
MIXED_WORKERS = 8


def measure(bed: Bed, config: Config, strategy: str, workers: int, identities: int = EXITS) -> Cell:
    """One cell; `identities`: how many paced identities (exits, proxies) the strategy may use."""
    bed.youtube.reset()
    RUNNERS[strategy](bed, config, workers)
    stats = bed.youtube.stats()
    finished: dict[str, float] = {}
    for at, _exit, kind, video_id, outcome in stats["timeline"]:
        if kind == "captions" and outcome == "ok" and video_id is not None:
            finished.setdefault(video_id, at)
    times = sorted(finished.values())
    requests = sum(sum(s["requests"].values()) for s in stats["exits"].values())
    blocks = sum(sum(s["blocks"].values()) for s in stats["exits"].values())
    burst = identities * config.budget
    per_min = steady_rate(times[min(burst, len(times) // 3) :]) * 60
    cell = Cell(strategy, workers, len(times), per_min, requests / max(1, len(times)), blocks)
    say(
        f"{strategy:>19}, W={workers}: {cell.done}/{len(config.videos)} videos, {per_min:6.1f}/min, "
        f"{cell.requests_per_video:.2f} requests/video, {blocks} blocks"
    )
    return cell


def steady_rate(times: Sequence[float]) -> float:
    """Videos per second: the slope of "videos finished" against time, fitted over every finish. Paced by
    budgets, finishes come in steps; a fit over all of them is not swayed by where the first and last fall."""
    if len(times) < 3 or times[-1] <= times[0]:
        return 0.0
    return statistics.linear_regression(times, range(len(times))).slope


@dataclass(frozen=True)
class Calibration:
    """One worker with no pacing: seconds per video on a warm circuit, and what the product adds to it."""

    t_video: float
    new_circuit_s: float  # extra cost of the first video on a fresh circuit (circuit build + TLS handshake)
    probe_s: float  # one exit probe (a SOCKS stream opened and closed, exit read from Tor's events)


def calibrate(bed: Bed, config: Config) -> Calibration:
    bed.youtube.reset()
    identity = Identity.first(new_run_id(), 0)
    proxy = ProxyEndpoint(*bed.tor.socks)
    session = new_session(identity=identity, proxy=proxy, ca_bundle=bed.youtube.ca_bundle)
    fetcher = TranscriptFetcher(session, use_ytdlp=False)
    durations, probes = [], []
    try:
        with contextlib.closing(TorController.connect(control=bed.tor.control)) as tor:
            for video_id in config.videos[: CALIBRATION_VIDEOS + 1]:
                started = time.monotonic()
                fetcher.fetch(video_id)
                durations.append(time.monotonic() - started)
                started = time.monotonic()
                probe_exit(tor, identity, proxy)
                probes.append(time.monotonic() - started)
    finally:
        fetcher.close()
        session.close()
    t_video = statistics.median(durations[1:])  # the first one pays for the circuit and the TLS handshake
    return Calibration(t_video, durations[0] - t_video, statistics.median(probes))


def markdown_table(config: Config, t_video: float, cells: dict[tuple[str, int], Cell]) -> str:
    header = ["W", "limit (videos/min)", *(f"{s} (videos/min, % of limit)" for s in STRATEGIES)]
    header.append("study-buddy requests/video")
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for workers in WORKER_COUNTS:
        limit = limit_per_min(config, t_video, workers)
        shown = [
            f"{cells[s, workers].per_min:.0f} ({cells[s, workers].per_min / limit:.0%})" for s in STRATEGIES
        ]
        sb = cells["study-buddy", workers]
        rows.append(f"| {workers} | {limit:.0f} | {' | '.join(shown)} | {sb.requests_per_video:.2f} |")
    return "\n".join(rows)


def limit_per_min(config: Config, t_video: float, workers: int, identities: int = EXITS) -> float:
    return min(workers / t_video * 60, identities * config.budget / config.window * 60)


def mixed_pool_line(config: Config, t_video: float, cell: Cell) -> str:
    identities = EXITS + MIXED_PROXIES
    limit = limit_per_min(config, t_video, cell.workers, identities)
    share = cell.per_min / limit
    return _goal(
        share >= 0.9,
        f"mixed pool (Tor's {EXITS} exits + {MIXED_PROXIES} proxies, W={cell.workers}) >= 90% of the limit "
        f"its identities allow: {cell.per_min:.0f}/min of {limit:.0f}/min ({share:.0%}), "
        f"{cell.requests_per_video:.2f} requests/video, {cell.blocks} blocks",
    )


def goals(config: Config, t_video: float, cells: dict[tuple[str, int], Cell]) -> list[str]:
    def rate(strategy: str, workers: int) -> float:
        return cells[strategy, workers].per_min

    exit_bound = [w for w in WORKER_COUNTS if w / t_video * 60 >= config.exit_limit_per_min]
    shares = {w: rate("study-buddy", w) / limit_per_min(config, t_video, w) for w in WORKER_COUNTS}
    versus_sequential = rate("study-buddy", 4) / max(rate("sequential rotation", 4), 1e-9)
    versus_shared = {w: rate("study-buddy", w) / max(rate("shared session", w), 1e-9) for w in exit_bound}
    worst_requests = max(cells["study-buddy", w].requests_per_video for w in WORKER_COUNTS)
    return [
        _goal(
            min(shares.values()) >= 0.9,
            "study-buddy >= 90% of the limit at every W: "
            + ", ".join(f"W={w} {share:.0%}" for w, share in shares.items()),
        ),
        _goal(versus_sequential >= 3.5, f">= 3.5x sequential at 4 workers: {versus_sequential:.1f}x"),
        _goal(
            bool(versus_shared) and min(versus_shared.values()) >= 2,
            ">= 2x shared session where exits are the bottleneck: "
            + (", ".join(f"W={w} {x:.1f}x" for w, x in versus_shared.items()) or "no such W"),
        ),
        _goal(worst_requests <= 4, f"<= 4 YouTube requests per video: at most {worst_requests:.2f}"),
    ]


def _goal(met: bool, text: str) -> str:
    return f"- [{'x' if met else ' '}] {text}{'' if met else '  (MISSED)'}"


def plot(config: Config, t_video: float, cells: dict[tuple[str, int], Cell], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot(
        WORKER_COUNTS,
        [limit_per_min(config, t_video, w) for w in WORKER_COUNTS],
        "k--",
        label="limit min(W / t_video, E·r / window)",
    )
    for strategy, marker in zip(STRATEGIES, "osD", strict=True):
        rates = [cells[strategy, w].per_min for w in WORKER_COUNTS]
        axes.plot(WORKER_COUNTS, rates, marker=marker, label=strategy)
    axes.set_xscale("log", base=2)
    axes.set_xticks(WORKER_COUNTS, [str(w) for w in WORKER_COUNTS])
    axes.set_xlabel("workers (W)")
    axes.set_ylabel("videos per minute (steady state)")
    axes.set_title(
        f"Throughput on the test bed: {EXITS} exits, {config.budget} videos/exit per {config.window:g} s, "
        f"{config.latency:g} s/request",
        fontsize=9,
    )
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plot", nargs="?", type=Path, default=ROOT / "scripts" / "bench-throughput.png")
    parser.add_argument("--latency", type=float, default=0.15, help="seconds per YouTube request")
    parser.add_argument("--budget", type=int, default=3, help="videos per exit per window")
    parser.add_argument("--window", type=float, default=2.0, help="the budget's window, in seconds")
    parser.add_argument("--videos", type=int, default=44, help="videos per cell (at most 44)")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    normal = [vid for vid, entry in load_catalogue().items() if entry.case == "normal"]
    config = Config(args.latency, args.budget, args.window, normal[: args.videos])
    server_limit = Limit(config.budget, config.window * SERVER_WINDOW_SHARE, BLOCK_FOR_S, "cycle")
    cells: dict[tuple[str, int], Cell] = {}
    with running_bed(latency=config.latency) as bed:
        bed.youtube.configure(limit=server_limit)
        say("warming up the bed (one study-buddy run, not measured)")
        run_study_buddy(bed, config, 1)
        calibration = calibrate(bed, config)
        t_video = calibration.t_video
        say(
            f"t_video = {t_video:.3f} s per video for one worker (warm circuit, no pacing); a fresh circuit "
            f"adds {calibration.new_circuit_s:.3f} s, an exit probe takes {calibration.probe_s:.3f} s"
        )
        for workers in WORKER_COUNTS:
            for strategy in STRATEGIES:
                if strategy == "sequential rotation" and workers > 1:
                    cells[strategy, workers] = cells[strategy, 1]  # one video at a time whatever W is
                    continue
                cells[strategy, workers] = measure(bed, config, strategy, workers)
        mixed = measure(bed, config, "mixed pool", MIXED_WORKERS, EXITS + MIXED_PROXIES)
    plot(config, t_video, cells, args.plot)
    print(
        f"\n{len(config.videos)} videos per cell, {EXITS} exits, budget {config.budget} videos/exit per "
        f"{config.window:g} s (E·r/window = {config.exit_limit_per_min:.0f}/min), {config.latency:g} s per "
        f"request, t_video = {t_video:.2f} s; steady state (first {config.burst} videos left out). "
        f"A fresh circuit adds {calibration.new_circuit_s:.2f} s to its first video; an exit probe takes "
        f"{calibration.probe_s:.3f} s. Sequential rotation runs one video at a time: measured once, shown "
        "for every W.\n"
    )
    print(markdown_table(config, t_video, cells))
    print("\nGoals:\n" + "\n".join([*goals(config, t_video, cells), mixed_pool_line(config, t_video, mixed)]))
    print(f"\nPlot: {args.plot}")


if __name__ == "__main__":
    main()
