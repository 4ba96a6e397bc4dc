"""The hostile bed: today's YouTube, where most Tor exits are blocked. Prints what a run achieves.

A private Tor network of 12 exits; the fake YouTube blocks all but 3 outright, and lets those 3 serve up to a
tolerance study-buddy is never told. Two runs of the real CLI (`--parallel --workers 4`), each on a fresh
archive, then a third on the first one's archive:

- budget below the tolerance (`--per-exit 2/20s`, tolerance 3 per 20 s): goal >= 90 % of the limit the good
  exits allow, and at most one blocked answer per bad exit plus 2;
- budget above it (`--per-exit 5/20s`): goal: all done, >= 60 % of the limit, no silent wait over 60 s;
- a second run on the first one's archive: blocked answers in its first 10 videos (goal: at most 1).

The limit is what the good exits allow at the budget: good exits x min(budget, tolerance) per window. The
rate counts the whole run, learning included. A silent wait is the longest time the CLI printed nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.bedctl import CLI, Bed, running_bed
from tests.bed.hostile import make_hostile
from tests.bed.youtube_server import Limit
from tests.bed.youtube_site import BLOCK_STYLES, load_catalogue

WINDOW_S = 20.0
TOLERANCE = 3
GOOD = 3
VIDEOS = [vid for vid, entry in load_catalogue().items() if entry.case == "normal"]


def run(bed: Bed, output: Path, videos: Sequence[str], budget: int) -> tuple[float, float, int]:
    """(seconds, longest silence, exit code) of one CLI run."""
    args = [CLI, "--parallel", "--workers", "4", "--per-exit", f"{budget}/{WINDOW_S:g}s"]
    args += ["--exit-cooldown", "2m", "--exit-interval", "0s", "--", *videos]
    started = last = time.monotonic()
    silence = 0.0
    with subprocess.Popen(
        args,
        env=bed.cli_env(output, notes=False),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        for _line in process.stdout:
            now = time.monotonic()
            silence, last = max(silence, now - last), now
    return time.monotonic() - started, silence, process.returncode


def blocked_answers(bed: Bed, first: int | None = None) -> int:
    """Watch requests the server refused (one per try), in all or in the first `first` fetches."""
    timeline = [event for event in bed.youtube.stats()["timeline"] if event[2] == "watch"]
    if first is not None:
        served = [n for n, event in enumerate(timeline) if event[4] == "ok"]
        timeline = timeline[: served[first - 1] + 1] if len(served) >= first else timeline
    return sum(1 for event in timeline if event[4] in BLOCK_STYLES)


def main() -> None:
    rows = []
    second = 0
    with running_bed(hostile=True) as bed:
        exits = bed.tor.exits
        work = bed.tor.workdir.parent
        for name, budget, videos, seed in (("below", 2, VIDEOS[:30], 1), ("above", 5, VIDEOS[:30], 2)):
            hostile = make_hostile(
                bed.youtube, exits, good=GOOD, tolerance=Limit(TOLERANCE, WINDOW_S, 60.0), seed=seed
            )
            limit = GOOD * min(TOLERANCE, budget) / WINDOW_S * 60
            seconds, silence, code = run(bed, work / name, videos, budget)
            rate = len(videos) / seconds * 60
            rows.append(
                f"| {name} ({budget}/{WINDOW_S:g}s) | {limit:.1f} | {rate:.1f} ({rate / limit:.0%}) "
                f"| {blocked_answers(bed)} (bad exits: {len(hostile.bad)}) | {silence:.0f} s | {code} |"
            )
            if name == "below":
                bed.youtube.reset()
                run(bed, work / name, VIDEOS[30:40], budget)
                second = blocked_answers(bed, first=10)
    print(
        f"Hostile bed: 12 exits, {GOOD} serve ({TOLERANCE} videos per {WINDOW_S:g} s, hidden), the others "
        "blocked outright; 30 videos, 4 workers."
    )
    header = ["run (--per-exit)", "limit (videos/min)", "videos/min (share)", "blocked answers"]
    print("| " + " | ".join([*header, "longest silence", "exit code"]) + " |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"Second run on the first one's archive: {second} blocked answer(s) in its first 10 videos.")


if __name__ == "__main__":
    main()
