"""How one video's note gets written: which calls, in which order, and what each answer does next.

A `NotePlan` is the same for notes written call by call (`AnthropicEngine.generate`) and for notes
written through Message Batches (`batch`): `pending()` names the calls to send now, `params(key)` builds
one, `feed(key, message)` reads its answer, and `result()` gives the note once nothing is pending. Its
state is JSON (`state`), so a batch run that stops between two batches picks up where it was.

    short video   "note" (+ "assessment", reading the note's cached material)
    long video    one call per section ("s<first>-<last>": caption indices), cut between captions
                  -> the sections' structures merged in code (their seconds stay exact)
                  -> "overview" (summary, key concepts, connections) + "assessment", both reading the
                     merged section notes (cached)

Every answer is checked against the transcript (`note_checks`). One that fails gets one repair call
("<key>-r": the same request, the answer, and what was wrong with it); a section cut off at `max_tokens`
is first written again in two halves. A repair that fails too fails the video (`NotesError`, kind `notes`),
so no note is ever written half-right.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from studybuddy.errors import NotesError
from studybuddy.models import NoteBody, Segment, Transcript, Usage, VideoMeta
from studybuddy.notes.checks import MERGED_REQUIRED, REQUIRED, Captions, check_answer, has_speech, repair_text
from studybuddy.notes.chunking import halve, split_sections
from studybuddy.notes.prompting import (
    PROMPT_VERSION,
    TASKS,
    build_digest,
    build_material,
    estimate_request,
    request_params,
    with_repair,
)
from studybuddy.schema import (
    Misconception,
    Question,
    StudyNote,
    Tool,
    fold_outline,
    note_from_json,
    parse_answer,
)
from studybuddy.store.render import format_clock, note_json

if TYPE_CHECKING:
    from anthropic.types import Message

__all__ = ["DEFAULT_MAX_INPUT_TOKENS", "NotePlan", "NoteSettings"]

log = logging.getLogger(__name__)

DEFAULT_MAX_INPUT_TOKENS = 60_000
"""Estimated tokens (`chunking.estimate_tokens`) one call may send; a longer transcript goes in sections."""
REPAIR = "-r"
"""The suffix of a repair call's key (`note-r`: the repair of `note`)."""
_STATE_VERSION = 1
_MAX_REVIEW_QUESTIONS = 10
_SHOWN_PROBLEMS = 3


@dataclass(frozen=True, slots=True)
class NoteSettings:
    """How notes are written: the model, its output budget, the assessment, sections and language."""

    model: str
    max_tokens: int = 8000
    assessment: bool = True
    max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS
    language: str | None = None  # --notes-lang; None: the transcript's language


@dataclass(frozen=True, slots=True)
class _Reading:
    """What an answer holds: the structure (if the tool was called) and what is wrong with it."""

    note: StudyNote | None
    problems: list[str]
    content: list[dict[str, Any]]  # the answer as it goes back to the model in a repair
    cut_off: bool = False


class NotePlan:
    """The calls that write one video's note, and their answers so far."""

    def __init__(
        self,
        settings: NoteSettings,
        meta: VideoMeta,
        transcript: Transcript,
        state: dict[str, Any] | None = None,
    ) -> None:
        if not has_speech(transcript):
            raise NotesError(f"{meta.video_id}: the transcript has no spoken words (empty, or only [Music])")
        self.settings = settings
        self.meta = meta
        self.transcript = transcript
        self.language = settings.language or transcript.language_code
        self._captions = sorted(transcript.segments, key=lambda segment: segment.start)
        self._whole = Captions.of(transcript, meta.duration, meta.chapters)
        self.state: dict[str, Any] = state if state is not None else self._fresh_state()
        if self.state.get("version") != _STATE_VERSION:
            raise NotesError(f"{meta.video_id}: the saved progress of this note is from another version")

    # -- planning ------------------------------------------------------------------------------------

    def _fresh_state(self) -> dict[str, Any]:
        material = build_material(self.meta, self.transcript, self.language)
        tools = [Tool.NOTE, Tool.ASSESSMENT] if self.settings.assessment else [Tool.NOTE]
        fits = estimate_request(material, tools, TASKS[Tool.NOTE]) <= self.settings.max_input_tokens
        state: dict[str, Any] = {
            "version": _STATE_VERSION,
            "sections": None if fits else self._sections(),
            "answers": {},
            "repairs": {},
            "repaired": [],
            "usage": [0, 0, 0, 0],
            "model": None,
            "failed": None,
        }
        if not fits:
            log.info(
                "%s: long transcript, written in %d sections", self.meta.video_id, len(state["sections"])
            )
        return state

    def _sections(self) -> list[list[Any]]:
        """[first, last, may split] caption ranges of the sections a long transcript is cut into."""
        empty = build_material(self.meta, self._part(0, 0), self.language, section=(0.0, 0.0))
        overhead = estimate_request(empty, [Tool.SECTION], TASKS[Tool.SECTION])
        budget = max(self.settings.max_input_tokens - overhead - 50, self.settings.max_input_tokens // 4)
        ordered = replace(self.transcript, segments=tuple(self._captions))
        return [[first, last, True] for first, last in self._ranges(split_sections(ordered, budget), 0)]

    def _ranges(self, parts: Sequence[Transcript], first: int) -> list[tuple[int, int]]:
        ranges = []
        for part in parts:
            ranges.append((first, first + len(part.segments)))
            first += len(part.segments)
        return [(a, b) for a, b in ranges if has_speech(self._part(a, b))]

    def _part(self, first: int, last: int) -> Transcript:
        return replace(self.transcript, segments=tuple(self._captions[first:last]))

    def _span(self, first: int, last: int) -> tuple[float, float]:
        segments: Sequence[Segment] = self._captions[first:last]
        return segments[0].start, max(segment.start + segment.duration for segment in segments)

    @property
    def _long(self) -> bool:
        return self.state["sections"] is not None

    def _section_keys(self) -> list[str]:
        return [f"s{first}-{last}" for first, last, _ in self.state["sections"]]

    def _base_keys(self) -> list[str]:
        """The calls the note still needs, in the order they are sent."""
        answers = self.state["answers"]
        if self._long:
            keys = [key for key in self._section_keys() if key not in answers]
            if keys:
                return keys
            keys = ["overview"]
        else:
            keys = ["note"]
        if self.settings.assessment:
            keys.append("assessment")
        return [key for key in keys if key not in answers]

    def pending(self) -> list[str]:
        """The keys of the calls to send now, in order (a repair is `<key>-r`); empty once done or failed."""
        if self.state["failed"] is not None:
            return []
        return [key + REPAIR if key in self.state["repairs"] else key for key in self._base_keys()]

    # -- requests ------------------------------------------------------------------------------------

    def _tool(self, key: str) -> Tool:
        if key.startswith("s"):
            return Tool.SECTION
        return {"note": Tool.NOTE, "overview": Tool.OVERVIEW, "assessment": Tool.ASSESSMENT}[key]

    def _range(self, key: str) -> tuple[int, int]:
        first, last = key[1:].split("-")
        return int(first), int(last)

    def params(self, key: str) -> dict[str, Any]:
        """The Messages request of the call `key` (one of `pending()`)."""
        base = key.removesuffix(REPAIR)
        tool = self._tool(base)
        settings = self.settings
        if tool is Tool.SECTION:
            first, last = self._range(base)
            material = build_material(
                self.meta, self._part(first, last), self.language, section=self._span(first, last)
            )
            tools, cache = [Tool.SECTION], False
        else:
            main = Tool.OVERVIEW if self._long else Tool.NOTE
            tools = [main, Tool.ASSESSMENT] if settings.assessment else [main]
            cache = settings.assessment
            material = (
                build_digest(self.meta, self.transcript, self.language, self._section_notes())
                if self._long
                else build_material(self.meta, self.transcript, self.language)
            )
        params = request_params(
            model=settings.model,
            max_tokens=settings.max_tokens,
            tool=tool,
            tools=tools,
            material=material,
            task=TASKS[tool],
            cache=cache,
        )
        repair = self.state["repairs"].get(base) if key.endswith(REPAIR) else None
        if repair is None:
            return params
        return with_repair(params, repair["content"], repair["text"], cut_off=repair["cut_off"])

    # -- answers -------------------------------------------------------------------------------------

    def feed(self, key: str, message: Message) -> None:
        """Take the answer to call `key`. An answer to a call the plan no longer waits for is ignored."""
        if key not in self.pending():
            return
        state, base = self.state, key.removesuffix(REPAIR)
        usage = message.usage
        counts = (
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_input_tokens or 0,
            usage.cache_creation_input_tokens or 0,
        )
        state["usage"] = [total + count for total, count in zip(state["usage"], counts, strict=True)]
        state["model"] = message.model
        if message.stop_reason == "model_context_window_exceeded":
            self.fail(f"{self.meta.video_id}: the {self._what(base)} does not fit the model's context window")
            return
        tool = self._tool(base)
        reading = self._read(message, tool)
        if reading.cut_off and tool is Tool.SECTION and self._split(base):
            return
        problems, dropped = list(reading.problems), []
        if reading.note is not None:
            checked = check_answer(reading.note, self._captions_of(base), REQUIRED[tool])
            problems += checked.problems
            dropped = checked.dropped
            if not problems:
                self._accept(base, checked.note, dropped)
                return
        if key.endswith(REPAIR) or base in state["repaired"]:
            self.fail(
                f"{self.meta.video_id}: the {self._what(base)} failed the checks again after a repair: "
                + _summary(problems)
            )
            return
        log.info("%s: the %s needs a repair: %s", self.meta.video_id, self._what(base), _summary(problems))
        text = self._cut_off_text(tool) if reading.cut_off else repair_text(tool, problems, dropped)
        state["repairs"][base] = {"content": reading.content, "text": text, "cut_off": reading.cut_off}
        state["repaired"].append(base)

    def fail(self, reason: str) -> None:
        """Give up on this note: `result()` raises `NotesError(reason)` (a batch request that errored)."""
        self.state["failed"] = reason

    def _read(self, message: Message, tool: Tool) -> _Reading:
        from anthropic.types import TextBlock, ToolUseBlock

        cut_off = message.stop_reason == "max_tokens"
        calls = [
            block for block in message.content if isinstance(block, ToolUseBlock) and block.name == tool.value
        ]
        texts = [
            block.text for block in message.content if isinstance(block, TextBlock) and block.text.strip()
        ]
        if cut_off:
            tokens = message.usage.output_tokens
            problem = f"the answer was cut off at max_tokens ({tokens} tokens) before it was complete"
            return _Reading(None, [problem], [], cut_off=True)
        if not calls:
            refused = message.stop_reason == "refusal"
            problem = (
                "the model refused to answer"
                if refused
                else f"the answer is text instead of a call of {tool.value}"
            )
            return _Reading(None, [problem], [{"type": "text", "text": text} for text in texts])
        call = calls[0]
        note, problems = parse_answer(tool, call.input)
        content = [{"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}]
        return _Reading(note, problems, content)

    def _cut_off_text(self, tool: Tool) -> str:
        return (
            f"Your previous answer to this task was cut off at the limit of {self.settings.max_tokens} "
            f"output tokens before it was complete. Call {tool.value} again with the whole answer, written "
            "more concisely."
        )

    def _split(self, base: str) -> bool:
        """Replace a cut-off section by its two halves (once); False when it may not be split again."""
        sections = self.state["sections"]
        first, last = self._range(base)
        index = next(i for i, (a, b, _) in enumerate(sections) if (a, b) == (first, last))
        pieces = self._ranges(halve(self._part(first, last)), first)
        if not sections[index][2] or len(pieces) < 2:
            return False
        start, end = self._span(first, last)
        log.info(
            "%s: the notes on %s-%s were cut off; writing them in %d pieces",
            self.meta.video_id,
            format_clock(start),
            format_clock(end),
            len(pieces),
        )
        sections[index : index + 1] = [[a, b, False] for a, b in pieces]
        return True

    def _captions_of(self, base: str) -> Captions:
        if not base.startswith("s"):
            return self._whole
        first, last = self._range(base)
        start, end = self._span(first, last)
        end = min(end, self._whole.end)
        marks = [chapter.start for chapter in self.meta.chapters if start <= chapter.start <= end]
        return Captions(self._captions[first:last], end, marks)

    def _what(self, base: str) -> str:
        if base.startswith("s"):
            start, end = self._span(*self._range(base))
            return f"notes on {format_clock(start)}-{format_clock(end)}"
        return base

    def _accept(self, base: str, note: StudyNote, dropped: Sequence[str]) -> None:
        if dropped:
            log.info(
                "%s: the %s left out %d item(s) that point at no moment of the video (%s)",
                self.meta.video_id,
                self._what(base),
                len(dropped),
                dropped[0],
            )
        self.state["answers"][base] = note_json(note)
        self.state["repairs"].pop(base, None)

    # -- the note ------------------------------------------------------------------------------------

    def _answer(self, key: str) -> StudyNote:
        return note_from_json(self.state["answers"][key])

    def _section_notes(self) -> list[tuple[tuple[float, float], StudyNote]]:
        return [
            (self._span(first, last), self._answer(f"s{first}-{last}"))
            for first, last, _ in self.state["sections"]
        ]

    def result(self) -> NoteBody:
        """The checked note, once `pending()` is empty; NotesError when it failed."""
        if self.state["failed"] is not None:
            raise NotesError(self.state["failed"])
        if self.pending():
            raise RuntimeError(
                f"{self.meta.video_id}: the note is not complete: {self.pending()} still pending"
            )
        if self._long:
            overview = self._answer("overview")
            merged = replace(
                _merge([note for _, note in self._section_notes()]),
                summary=overview.summary,
                key_concepts=overview.key_concepts,
                connections=overview.connections,
            )
            checked = check_answer(merged, self._whole, MERGED_REQUIRED)
            if not checked.ok:
                raise NotesError(
                    f"{self.meta.video_id}: the merged note failed the checks: {_summary(checked.problems)}"
                )
            note = checked.note
        else:
            note = self._answer("note")
        if self.settings.assessment:
            note = replace(note, assessment=self._answer("assessment").assessment)
        return NoteBody(
            note,
            self.state["model"] or self.settings.model,
            self.usage,
            prompt_version=PROMPT_VERSION,
            language=self.language,
        )

    @property
    def usage(self) -> Usage:
        """The tokens of every answer so far (a failed note cost them too)."""
        input_tokens, output_tokens, cache_read, cache_write = self.state["usage"]
        return Usage(input_tokens, output_tokens, cache_read, cache_write)


def _merge(sections: Sequence[StudyNote]) -> StudyNote:
    """One structure from the sections' (in time order): every outline item, example and misconception
    kept with its exact second, and up to ten review questions spread over the whole video."""
    mistakes: dict[str, Misconception] = {}
    for misconception in (m for note in sections for m in note.misconceptions):
        mistakes.setdefault(misconception.mistake.casefold(), misconception)
    questions = [question for note in sections for question in note.review_questions]
    return StudyNote(
        outline=fold_outline(item for note in sections for item in note.outline),
        worked_examples=tuple(example for note in sections for example in note.worked_examples),
        misconceptions=tuple(mistakes.values()),
        review_questions=_spread(questions, _MAX_REVIEW_QUESTIONS),
    )


def _spread(questions: Sequence[Question], count: int) -> tuple[Question, ...]:
    if len(questions) <= count:
        return tuple(questions)
    step = (len(questions) - 1) / (count - 1)
    return tuple(questions[round(index * step)] for index in range(count))


def _summary(problems: Sequence[str]) -> str:
    shown = "; ".join(problems[:_SHOWN_PROBLEMS])
    more = len(problems) - _SHOWN_PROBLEMS
    return f"{shown} (and {more} more)" if more > 0 else shown
