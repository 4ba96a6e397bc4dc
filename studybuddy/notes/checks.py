"""The model's answer checked against the transcript, before anything of it becomes a note.

Every second the answer gives must lie within the video (or the section a call was about) and point at or
just before a caption that holds speech. `Captions.place` decides where a second lands:

- on the first caption that starts at most `SNAP_S` (2 s) after it: the link then plays from just before
  the words (a link is a whole second, so it is at or just before the caption's exact start);
- else on the caption it falls inside, moved back to that caption's start;
- a chapter's start (its whole second) stays where it is, speech or not: the video says a part starts there;
- else nowhere: past the end, before the start, or in a silence (music, a pause): the item cannot be
  placed and is dropped, counted in the log. No link to a bad second is ever written.

Then the structure is checked: outline items follow each other (every start second later than the one
before), each outline point lies within its item, and no part the call must fill is empty. A failed
check is a `problem`: the answer gets one repair call that lists the problems (`repair_text`); a part
left empty by dropped items is a problem too, and so is an answer most of whose seconds cannot be placed.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from studybuddy.models import Chapter, Segment, Transcript
from studybuddy.schema import Assessment, Concept, Example, OutlineItem, Point, Question, StudyNote, Tool
from studybuddy.store.render import format_clock

__all__ = [
    "MERGED_REQUIRED",
    "REQUIRED",
    "SNAP_S",
    "Captions",
    "Checked",
    "check_answer",
    "has_speech",
    "repair_text",
    "speaks",
]

SNAP_S = 2.0
"""How far before a caption's start a second may point and still be placed on that caption."""

REQUIRED: dict[Tool, tuple[str, ...]] = {
    Tool.NOTE: (
        "summary",
        "key_concepts",
        "outline",
        "misconceptions",
        "connections",
        "review_questions",
    ),
    Tool.SECTION: ("summary", "outline"),
    Tool.OVERVIEW: ("summary", "key_concepts", "connections"),
    Tool.ASSESSMENT: ("gap_analysis", "application", "one_step_further", "synthesis"),
}
"""The parts that may not be empty in each tool's answer (a video works no example now and then)."""
MERGED_REQUIRED = ("summary", "key_concepts", "outline", "connections")
"""The same for a long video's note, merged from its sections and its overview."""

_SOUND_TAGS = re.compile(r"\[[^\]]*\]|[♪♫]")  # [Music], [Applause], ♪: captions of sounds, not words
_WORD = re.compile(r"\w")
_MAX_SHOWN = 40
_T = TypeVar("_T", Concept, Example, OutlineItem, Question)


def speaks(text: str) -> bool:
    """Whether a caption says something besides sound tags like `[Music]` or `♪`."""
    return bool(_WORD.search(_SOUND_TAGS.sub("", text)))


def has_speech(transcript: Transcript) -> bool:
    """Whether any caption of the transcript holds speech."""
    return any(speaks(segment.text) for segment in transcript.segments)


class Captions:
    """The captions with speech of a video (or a section of one), to place the seconds of an answer on,
    and the starts of its chapters (`marks`): a chapter starts where the video says it does, speech or not."""

    def __init__(self, segments: Sequence[Segment], end: float, marks: Iterable[float] = ()) -> None:
        within = (s for s in segments if 0 <= s.start <= end and speaks(s.text))
        spoken = sorted(within, key=lambda s: s.start)
        self._starts = [segment.start for segment in spoken]
        self._ends = [segment.start + max(segment.duration, 0.0) for segment in spoken]
        self._marks = {int(mark) for mark in marks if 0 <= mark <= end}
        self.start = self._starts[0] if spoken else 0.0
        self.end = end

    @classmethod
    def of(
        cls, transcript: Transcript, duration: float | None = None, chapters: Iterable[Chapter] = ()
    ) -> Captions:
        """The captions of `transcript` within `duration` (default: up to the last caption's end), and the
        starts of `chapters`."""
        return cls(transcript.segments, duration if duration else transcript.end, (c.start for c in chapters))

    def place(self, second: int) -> int | None:
        """The whole second a link to `second` should use, or None when it cannot be placed (see above)."""
        if second < 0 or second > self.end:
            return None
        if second in self._marks:
            return second
        after = bisect.bisect_left(self._starts, second)
        if after < len(self._starts) and self._starts[after] - second <= SNAP_S:
            return int(self._starts[after])
        inside = after - 1
        if inside >= 0 and second < self._ends[inside]:
            return int(self._starts[inside])
        return None

    def why_not(self, second: int) -> str:
        """Why `second` cannot be placed, for the repair message."""
        if second > self.end:
            return f"{second} s is past the end ({format_clock(self.end)})"
        if second < self.start:
            return f"{second} s is before the first caption ({format_clock(self.start)})"
        return f"{second} s is at no caption (no speech starts within {SNAP_S:g} s of it)"


@dataclass(slots=True)
class Checked:
    """A checked answer: the structure with every second placed, what is wrong with it, what was dropped."""

    note: StudyNote
    problems: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # one line per item that could not be placed
    placed: int = 0  # seconds that could be placed

    @property
    def ok(self) -> bool:
        return not self.problems


def _quoted(text: str) -> str:
    return f"“{text[:_MAX_SHOWN]}{'…' if len(text) > _MAX_SHOWN else ''}”"


class _Placer:
    """Places the seconds of one answer, keeping what could be placed and noting what could not."""

    def __init__(self, captions: Captions, checked: Checked) -> None:
        self.captions = captions
        self.checked = checked

    def second(self, second: int, what: str) -> int | None:
        placed = self.captions.place(second)
        if placed is None:
            self.checked.dropped.append(f"{what}: {self.captions.why_not(second)}")
        else:
            self.checked.placed += 1
        return placed

    def keep(self, items: Sequence[_T], what: Sequence[str]) -> tuple[_T, ...]:
        """The items whose second could be placed, each moved to its placed second."""
        kept = []
        for item, name in zip(items, what, strict=True):
            placed = self.second(item.second, name)
            if placed is not None:
                kept.append(replace(item, second=placed))
        return tuple(kept)

    def questions(self, questions: Sequence[Question], group: str) -> tuple[Question, ...]:
        names = [f"{group} question {number}" for number in range(1, len(questions) + 1)]
        return self.keep(questions, names)

    def outline(self, items: Sequence[OutlineItem]) -> tuple[OutlineItem, ...]:
        names = [f"outline item {number} {_quoted(item.title)}" for number, item in enumerate(items, start=1)]
        placed = self.keep(items, names)
        for previous, current in itertools.pairwise(placed):
            if current.second <= previous.second:
                self.checked.problems.append(
                    f"outline item {_quoted(current.title)} at {format_clock(current.second)} does not come "
                    f"after {_quoted(previous.title)} at {format_clock(previous.second)}: outline seconds "
                    "must increase"
                )
        ends = [item.second for item in placed[1:]] + [int(self.captions.end) + 1]
        return tuple(self._points(item, end) for item, end in zip(placed, ends, strict=False))

    def _points(self, item: OutlineItem, end: int) -> OutlineItem:
        kept: list[Point] = []
        for number, point in enumerate(item.points, start=1):
            name = f"point {number} of outline item {_quoted(item.title)}"
            placed = self.second(point.second, name)
            if placed is None:
                continue
            if not item.second <= placed < end:
                self.checked.dropped.append(
                    f"{name}: {placed} s is outside its item "
                    f"({format_clock(item.second)}-{format_clock(end)})"
                )
                continue
            kept.append(Point(placed, point.text))
        return replace(item, points=tuple(sorted(kept, key=lambda point: point.second)))


def check_answer(note: StudyNote, captions: Captions, required: Sequence[str]) -> Checked:
    """Place every second of `note` on `captions`, then check its structure (parts in `required` filled)."""
    checked = Checked(note)
    placer = _Placer(captions, checked)
    concepts = note.key_concepts
    examples = note.worked_examples
    assessment = note.assessment
    checked.note = replace(
        note,
        key_concepts=placer.keep(concepts, [f"key concept {_quoted(c.term)}" for c in concepts]),
        outline=placer.outline(note.outline),
        worked_examples=placer.keep(examples, [f"worked example {_quoted(e.problem)}" for e in examples]),
        review_questions=placer.questions(note.review_questions, "review"),
        assessment=None
        if assessment is None
        else Assessment(
            **{name: placer.questions(questions, name) for name, questions in assessment.groups()}
        ),
    )
    for part in required:
        if not _filled(checked.note, part):
            checked.problems.append(f"`{part}` is empty: it must hold at least one entry")
    timed = checked.placed + len(checked.dropped)
    if len(checked.dropped) >= 2 and len(checked.dropped) * 2 > timed:
        checked.problems.append(
            f"{len(checked.dropped)} of {timed} seconds are past the end or at no caption: copy seconds from "
            f"the [Ns] lines (the material ends at {format_clock(captions.end)})"
        )
    return checked


def _filled(note: StudyNote, part: str) -> bool:
    if note.assessment is not None and hasattr(note.assessment, part):
        return bool(getattr(note.assessment, part))
    return bool(getattr(note, part, None))


def repair_text(tool: Tool, problems: Sequence[str], dropped: Sequence[str]) -> str:
    """What the repair call tells the model: what was wrong, and to call the tool again with all of it."""
    lines = ["Your answer cannot be used as it is. What is wrong with it:", *(f"- {p}" for p in problems)]
    if dropped:
        lines.append("These entries point at no moment of the material and were left out:")
        lines += [f"- {line}" for line in dropped[:20]]
    lines.append(
        f"Call {tool.value} again with the whole corrected answer. Copy every second from a [Ns] line of the "
        "material, keep outline items in the order of the video, and fill every part."
    )
    return "\n".join(lines)
