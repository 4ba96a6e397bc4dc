"""Time the offline note engine on long transcripts built from the test transcripts (1 hour, 10 hours).

Prints one line per size: words, sentences, seconds. The goal: under 1 s for a 1-hour transcript.
Run from the repository root: `.venv/bin/python scripts/bench_offline.py`.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studybuddy.models import Segment, Transcript, VideoMeta
from studybuddy.notes.offline import OfflineEngine

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "transcripts"
WORDS_PER_HOUR = 10_000


def long_transcript(hours: float, *, asr: bool) -> Transcript:
    """Captions of the test lectures, shuffled in blocks and renamed per block so topics differ."""
    lectures = [json.loads(path.read_text()) for path in sorted(DATA.glob("*.json"))]
    pool = [segment["text"] for lecture in lectures for segment in lecture["segments"]]
    chooser = random.Random(42)
    segments: list[Segment] = []
    words, at, block = 0, 0.0, 0
    while words < hours * WORDS_PER_HOUR:
        first = chooser.randrange(len(pool) - 30)
        for caption in pool[first : first + 30]:
            tagged = " ".join(w + f"{block % 40}" if len(w) > 7 else w for w in caption.split())
            text = tagged.lower().replace(".", "").replace(",", "") if asr else tagged
            duration = len(text.split()) / 2.8
            segments.append(Segment(at, duration, text))
            words, at = words + len(text.split()), at + duration
        block += 1
    return Transcript("benchVideo1", "English", "en", asr, tuple(segments))


def main() -> None:
    engine = OfflineEngine()
    for hours, asr in ((1, False), (1, True), (10, False), (10, True)):
        transcript = long_transcript(hours, asr=asr)
        meta = VideoMeta("benchVideo1", title="bench", duration=transcript.end)
        started = time.perf_counter()
        body = engine.generate(meta, transcript)
        elapsed = time.perf_counter() - started
        words = sum(len(segment.text.split()) for segment in transcript.segments)
        kind = "automatic" if asr else "manual"
        notes = len(body.markdown)
        print(
            f"{hours:>2} h {kind:<9} captions: {words:>6} words, {notes:>6} chars of notes, {elapsed:.3f} s"
        )


if __name__ == "__main__":
    main()
