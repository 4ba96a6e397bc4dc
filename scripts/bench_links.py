"""Measure the Linker on a big tree: `python scripts/bench_links.py [NOTES]` (default 5,000).

Writes NOTES fake notes (50 topics, ~400 words each) to a temp folder, then times the first link (which
builds the index from disk) and the next 50 links (index kept in memory, backlinks written).
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

from studybuddy.store.links import Linker

WORDS = [f"word{n}" for n in range(20_000)]


def write_tree(root: Path, count: int, rng: random.Random) -> None:
    topics = [rng.sample(WORDS, 300) for _ in range(50)]
    for n in range(count):
        words = rng.choices(topics[n % 50], k=300) + rng.choices(WORDS, k=100)
        body = "\n".join(" ".join(words[i : i + 20]) for i in range(0, len(words), 20))
        path = root / f"Topic {n % 50}" / f"Note {n}.md"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"---\ntitle: Note {n}\nvideo_id: v{n:010d}\n---\n\n# Note {n}\n\n{body}\n")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_tree(root, count, rng)
        linker = Linker(root)
        started = time.perf_counter()
        linker.link(root / "Topic 0" / "Note 0.md")
        first = time.perf_counter() - started
        started = time.perf_counter()
        for n in range(1, 51):
            linker.link(root / f"Topic {n % 50}" / f"Note {n}.md")
        each = (time.perf_counter() - started) / 50
        print(
            f"{count} notes: first link (builds the index) {first:.2f} s, then {each * 1000:.1f} ms per note"
        )


if __name__ == "__main__":
    main()
