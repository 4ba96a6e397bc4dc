"""What a note costs: tokens, calls and repairs per note, against the fake Anthropic API on loopback.

Real-sized transcripts (about 150 words a minute, captions of 2-4 s, built from the test lectures as in
`bench_offline`) of 10 minutes, 1, 3 and 10 hours go through the Anthropic engine with its defaults (the
assessment on, `--max-input-tokens` 60000). The fake counts tokens roughly as a BPE tokenizer does and
breaks 10% of its answers on purpose (a second past the end, a missing part, outline items out of order, a
`max_tokens` stop inside the tool input, prose instead of a tool call), the same ones in every run (seeded);
a first table has no broken answers, to compare with notes as they were written before (README).

Prints per length, averaged over its videos (a failed note's calls count too): input tokens (uncached,
written to the cache, read from it), output tokens, calls, the estimated cost at claude-sonnet-4-5's list
price (`usage.py`), the share of answers that needed a repair, the outline's coverage (share of the video's
twentieths with an outline item) and how many notes failed; then whether every written note passes the
checks again.
Run: `./scripts/bench_notes` (add `--quick` for fewer videos).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_offline import long_transcript

from studybuddy.errors import NotesError
from studybuddy.models import NoteBody, Transcript, VideoMeta
from studybuddy.notes.anthropic import AnthropicEngine
from studybuddy.notes.checks import Captions, check_answer
from studybuddy.notes.plan import REPAIR
from studybuddy.notes.ratelimit import RequestLimiter
from studybuddy.store.render import render_note
from studybuddy.store.usage import DEFAULT_TABLE
from tests.fakes.anthropic_server import API_KEY, MODEL, start_fake_anthropic

SIZES = ((10 / 60, "10 min", 20), (1.0, "1 h", 20), (3.0, "3 h", 6), (10.0, "10 h", 2))
PRICED_AS = "claude-sonnet-4-5"
BREAK_SHARES = (0.0, 0.10)  # the first table compares with the code before structured notes
LINK = re.compile(r"youtu\.be/[\w-]+\?t=(\d+)")
PARTS = 20


@dataclass
class Totals:
    notes: int = 0
    failed: int = 0
    input: int = 0
    cache_write: int = 0
    cache_read: int = 0
    output: int = 0
    calls: int = 0
    answers: int = 0
    repairs: int = 0
    cost: float = 0.0
    coverage: float = 0.0
    passing: int = 0
    problems: list[str] = field(default_factory=list)


def coverage(body: NoteBody, duration: float) -> float:
    """The share of the video's twentieths that hold an outline item or point."""
    seconds = [item.second for item in body.note.outline]
    seconds += [point.second for item in body.note.outline for point in item.points]
    return len({min(int(second / duration * PARTS), PARTS - 1) for second in seconds}) / PARTS


def passes(meta: VideoMeta, transcript: Transcript, body: NoteBody) -> list[str]:
    """What is wrong with a written note: its structure checked again, every link at a caption's start."""
    checked = check_answer(
        body.note, Captions.of(transcript, meta.duration, meta.chapters), ("summary", "outline")
    )
    wrong = checked.problems + checked.dropped
    starts = {int(segment.start) for segment in transcript.segments}
    note = render_note(meta, transcript, body)
    wrong += [
        f"link to {second} s is at no caption" for second in LINK.findall(note) if int(second) not in starts
    ]
    return wrong


def write(
    engine: AnthropicEngine, meta: VideoMeta, transcript: Transcript, totals: Totals
) -> NoteBody | None:
    """One note, call by call as `AnthropicEngine.generate` writes it, counting calls, repairs and tokens."""
    plan = engine.plan(meta, transcript)
    while keys := plan.pending():
        totals.calls += 1
        totals.repairs += keys[0].endswith(REPAIR)
        totals.answers += not keys[0].endswith(REPAIR)
        plan.feed(keys[0], engine.send(plan.params(keys[0]), meta.video_id))
    usage, price = plan.usage, DEFAULT_TABLE.price_of(PRICED_AS)
    assert price is not None
    totals.input += usage.input_tokens
    totals.cache_write += usage.cache_write_tokens
    totals.cache_read += usage.cache_read_tokens
    totals.output += usage.output_tokens
    totals.cost += (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_write_tokens * price.cache_write
        + usage.cache_read_tokens * price.cache_read
    ) / 1e6
    try:
        return plan.result()
    except NotesError as error:
        totals.failed += 1
        totals.problems.append(str(error))
        return None


def measure(engine: AnthropicEngine, hours: float, label: str, count: int, run: int) -> Totals:
    """`count` videos of `hours` (their ids differ by `run`: nothing is cached from an earlier run)."""
    totals = Totals()
    for number in range(count):
        transcript = long_transcript(hours, asr=number % 2 == 1)
        video_id = f"b{round(hours * 60):04d}{run}v{number:04d}"
        meta = VideoMeta(video_id, title=f"bench {label}", duration=transcript.end)
        body = write(engine, meta, transcript, totals)
        totals.notes += 1
        if body is None:
            continue
        totals.coverage += coverage(body, transcript.end)
        wrong = passes(meta, transcript, body)
        totals.passing += not wrong
        totals.problems += wrong
    return totals


def table(engine: AnthropicEngine, share: float, run: int, quick: bool) -> tuple[int, int, list[str]]:
    """Print one table (the fake breaking `share` of its answers): notes written, passing, problems."""
    print(
        f"\nper video, averaged; cost at {PRICED_AS} list prices; the fake breaks {share:.0%} of its answers"
    )
    print(
        "| length | notes | input | cache write | cache read | all input | output | calls | cost USD "
        "| repaired answers | outline coverage | failed |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    written = passing = 0
    problems: list[str] = []
    for hours, label, count in SIZES:
        totals = measure(engine, hours, label, 2 if quick else count, run)
        notes, done = totals.notes, max(totals.notes - totals.failed, 1)
        every = totals.input + totals.cache_write + totals.cache_read
        print(
            f"| {label} | {notes} | {totals.input / notes:,.0f} | {totals.cache_write / notes:,.0f} "
            f"| {totals.cache_read / notes:,.0f} | {every / notes:,.0f} | {totals.output / notes:,.0f} "
            f"| {totals.calls / notes:.2f} | {totals.cost / notes:.4f} "
            f"| {totals.repairs / max(totals.answers, 1):.1%} | {totals.coverage / done:.0%} "
            f"| {totals.failed} |"
        )
        written += totals.notes - totals.failed
        passing += totals.passing
        problems += totals.problems
    return written, passing, problems


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    fake, stop = start_fake_anthropic()
    engine = AnthropicEngine(
        api_key=API_KEY, model=MODEL, limiter=RequestLimiter(4, 1_000_000), base_url=fake.url, max_retries=0
    )
    written = passing = 0
    problems: list[str] = []
    try:
        for run, share in enumerate(BREAK_SHARES):
            fake.break_share = share
            counts = table(engine, share, run, quick)
            written, passing, problems = written + counts[0], passing + counts[1], problems + counts[2]
    finally:
        engine.close()
        stop()
    print(f"\nwritten notes passing the checks again: {passing}/{written}")
    for problem in problems[:10]:
        print(f"  {problem}")


if __name__ == "__main__":
    main()
