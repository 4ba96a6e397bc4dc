"""Simulates study-buddy's exit pacing at internet scale and prints what each policy achieves.

The real decision code (limiter, reputation, pacer, spare circuits and their bank, trials) runs in virtual
time (`scripts/sim/vtime.py`) against a synthetic Tor network and YouTube (`scripts/sim/world.py`): by default
1,000 exits, 90 % of them blocked outright, each good exit tolerating a number of videos per 10 minutes
drawn from a range, circuits built in 0.3-3 s, requests of 0.2-1.5 s. Each policy (`scripts/sim/
policies.py`: the shipped pacer, the baseline before it, a global NEWNYM rotation) runs on the same network
(same seed) with 4, 8 and 16 workers and 2,000 videos, and the script prints videos per hour, blocked answers
and YouTube requests per finished video, videos given up, and the share of the limit
min(W / t_video, what the good exits allow): over the whole run and after the warm-up (the first 200
videos). Nothing touches a network: it is arithmetic on a virtual clock.

Usage: ./scripts/simulate [--seed N] [--videos N] [--workers 4,8,16] [--policies new,new-warm,baseline,newnym]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.sim.policies import POLICIES, MemoryStore, Tally, run_new
from scripts.sim.vtime import VirtualTime
from scripts.sim.world import Shape, SimWorld
from studybuddy.config import Settings
from studybuddy.units import ExitBudget, parse_duration

WARM_UP = 200


@dataclasses.dataclass
class Row:
    policy: str
    workers: int
    limit_per_hour: float
    tally: Tally
    blocked: int
    requests: int
    wall_s: float
    spent: dict[tuple[str, str], float]
    builds: int
    known_limit_per_hour: float

    def ledger(self) -> str:
        """Where the workers' simulated time went, and what the circuit tasks built."""
        worker_s = {what: s for (kind, what), s in self.spent.items() if kind == "worker"}
        total = (
            self.workers * (self.tally.finished_at[-1] - self.tally.started_at)
            if self.tally.finished_at
            else 0
        )
        parts = [f"{what} {s / total:.0%}" for what, s in sorted(worker_s.items(), key=lambda item: -item[1])]
        parts.append(f"idle {1 - sum(worker_s.values()) / total:.0%}" if total else "")
        spare_builds = self.spent.get(("circuit", "build"), 0.0)
        return (
            f"{self.policy} W={self.workers}: worker time: {', '.join(parts)}; circuit builds {self.builds} "
            f"({spare_builds / 3600:.1f} h of them in background tasks); trials {self.tally.trials}; "
            f"good exits known at the end {len(self.tally.known_good)} allowing "
            f"{self.known_limit_per_hour:,.0f} videos/h"
        )

    def rate(self, start: int = 0) -> float:
        done = self.tally.finished_at
        if len(done) <= start + 1:
            return 0.0
        began = done[start - 1] if start else self.tally.started_at
        return (len(done) - start) / (done[-1] - began) * 3600

    def per_video(self, totals: list[int], final: int, start: int = 0) -> float:
        done = len(self.tally.finished_at)
        if done <= start:
            return float("nan")
        before = totals[start - 1] if start else 0
        return (final - before) / (done - start)

    def cells(self) -> list[str]:
        warm = self.rate(WARM_UP)
        return [
            self.policy,
            str(self.workers),
            f"{self.limit_per_hour:,.0f}",
            f"{self.rate():,.0f}",
            f"{warm:,.0f} ({warm / self.limit_per_hour:.0%})",
            f"{self.per_video(self.tally.blocked_at_finish, self.blocked):.2f}",
            f"{self.per_video(self.tally.blocked_at_finish, self.blocked, WARM_UP):.2f}",
            f"{self.per_video(self.tally.requests_at_finish, self.requests):.2f}",
            str(self.tally.given_up),
            f"{len(self.tally.finished_at)}",
        ]


HEADER = [
    "policy",
    "W",
    "limit (videos/h)",
    "videos/h",
    "after warm-up (share of limit)",
    "blocked/video",
    "blocked/video after 200",
    "requests/video",
    "given up",
    "done",
]


def simulate(policy: str, workers: int, videos: int, settings: Settings, shape: Shape, seed: int) -> Row:
    """One run of `policy` on a fresh network; `new-warm`: a second run on an archive that a first run of
    the same size (not counted) filled, a day later."""
    vt = VirtualTime()
    world = SimWorld(shape, vt, seed)
    ceiling = settings.per_exit.count * 3600 / settings.per_exit.window_s
    limit = min(workers / shape.mean_video_s * 3600, world.tolerance_per_hour(ceiling))
    started = time.perf_counter()
    if policy == "new-warm":
        store = MemoryStore()
        first = run_new(world, settings, workers, videos, vt, store)
        vt = VirtualTime(start=first.finished_at[-1] + 24 * 3600)
        world.next_run(vt)
        tally = run_new(world, settings, workers, videos, vt, store)
    else:
        tally = POLICIES[policy](world, settings, workers, videos, vt)
    return Row(
        policy,
        workers,
        limit,
        tally,
        world.blocked_answers,
        world.requests,
        time.perf_counter() - started,
        dict(vt.spent),
        world.builds,
        world.tolerance_per_hour(ceiling, tally.known_good),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--workers", default="4,8,16")
    parser.add_argument("--policies", default="new,new-warm,baseline,newnym")
    parser.add_argument("--exits", type=int, default=1000)
    parser.add_argument("--blocked-share", type=float, default=0.9)
    parser.add_argument("--tolerance", default="4-16", help="videos per 10 min a good exit serves (range)")
    parser.add_argument("--per-exit", default="8/10m")
    parser.add_argument("--exit-interval", default="30s")
    parser.add_argument("--exit-cooldown", default="30m")
    args = parser.parse_args(argv)
    sys.setswitchinterval(1e-5)  # simulated threads hand the baton over thousands of times a second
    logging.basicConfig(level=logging.ERROR)  # the pacer's warnings are the run's business, not the table's
    low, high = (int(part) for part in args.tolerance.split("-"))
    shape = Shape(exits=args.exits, blocked_share=args.blocked_share, tolerance=(low, high))
    settings = Settings(
        per_exit=ExitBudget.parse(args.per_exit),
        exit_interval_s=parse_duration(args.exit_interval),
        exit_cooldown_s=parse_duration(args.exit_cooldown),
    )
    print(
        f"Simulated network: {shape.exits} exits, {shape.blocked_share:.0%} blocked, good ones serve "
        f"{low}-{high} videos per 10 min; circuits {shape.build_s[0]}-{shape.build_s[1]} s, requests "
        f"{shape.request_s[0]}-{shape.request_s[1]} s; --per-exit {args.per_exit}, --exit-interval "
        f"{args.exit_interval}, --exit-cooldown {args.exit_cooldown}; {args.videos} videos; seed {args.seed}."
    )
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for workers in (int(n) for n in args.workers.split(",")):
        for policy in args.policies.split(","):
            row = simulate(policy, workers, args.videos, settings, shape, args.seed)
            print("| " + " | ".join(row.cells()) + " |", flush=True)
            print(f"<!-- {policy} W={workers}: {row.wall_s:.1f} s to simulate -->", file=sys.stderr)
            print(f"<!-- {row.ledger()} -->", file=sys.stderr)


if __name__ == "__main__":
    main()
