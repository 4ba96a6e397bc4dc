"""The requests the notes are written with: prompts, material, tools, and the version of all of them.

A request is laid out for prompt caching. The API caches prefixes in the order tools -> system -> messages,
and a different `tool_choice` invalidates only the cached messages. So the tools of calls that share
material are the same list, and the material (the transcript, or a long video's section notes) goes into
the system prompt after the rules, marked `cache_control` when another call will read it: the note and its
assessment call differ only in the forced tool and the task (the user message), and the assessment (and
any repair) reads the material from the cache.

The transcript goes in as lines `[SECONDSs] text`, captions joined into lines of about `LINE_S` seconds
(a timestamp on every two-second caption would cost a third of the tokens); a second is always the exact
start of a caption, so what the model copies can be placed on the transcript as it is.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

from studybuddy.models import Transcript, VideoMeta
from studybuddy.notes.checks import speaks
from studybuddy.notes.chunking import estimate_tokens
from studybuddy.schema import StudyNote, Tool, tool_definition
from studybuddy.store.render import format_clock
from studybuddy.text import one_line

__all__ = [
    "ASSESSMENT_TASK",
    "COMBINE_TASK",
    "LINE_S",
    "NOTE_TASK",
    "PROMPT_VERSION",
    "SECTION_TASK",
    "SYSTEM_PROMPT",
    "TASKS",
    "build_digest",
    "build_material",
    "estimate_request",
    "probe_params",
    "request_params",
    "transcript_lines",
    "with_repair",
]

LINE_S = 15.0
"""A transcript line joins the captions of about this many seconds (fewer at a sentence end or a pause)."""
_PAUSE_S = 2.0
_SENTENCE_END = re.compile(r"[.?!…。？！][\"'”’)\]]*$")


def _prompt(name: str) -> str:
    return resources.files(__package__).joinpath(f"prompts/{name}.md").read_text(encoding="utf-8")


SYSTEM_PROMPT = _prompt("system")
"""The role and rules shared by every call."""
NOTE_TASK = _prompt("notes")
SECTION_TASK = _prompt("section")
COMBINE_TASK = _prompt("combine")
ASSESSMENT_TASK = _prompt("assessment")
TASKS = {
    Tool.NOTE: NOTE_TASK,
    Tool.SECTION: SECTION_TASK,
    Tool.OVERVIEW: COMBINE_TASK,
    Tool.ASSESSMENT: ASSESSMENT_TASK,
}
_TOOLS_JSON = json.dumps([tool_definition(tool) for tool in Tool], sort_keys=True)
_VERSIONED = "\0".join((SYSTEM_PROMPT, *TASKS.values(), _TOOLS_JSON, f"line={LINE_S:g}"))
PROMPT_VERSION = "notes-" + hashlib.sha256(_VERSIONED.encode("utf-8")).hexdigest()[:12]
"""Changes whenever a prompt, a tool's schema or the material's layout does: notes record which wrote them."""


def transcript_lines(transcript: Transcript) -> list[tuple[float, str]]:
    """(start, text) of the lines the model reads: the captions with speech, joined up to `LINE_S` seconds.

    A line starts at a caption's start; it ends before a caption that would make it longer than `LINE_S`,
    after a pause of `_PAUSE_S` or more, or at a sentence end once it is half that long.
    """
    lines: list[tuple[float, list[str], float]] = []  # start, texts, end of the last caption
    for segment in sorted(transcript.segments, key=lambda s: s.start):
        text = one_line(segment.text)
        if not speaks(text):
            continue
        if lines:
            start, texts, end = lines[-1]
            full = segment.start - start >= LINE_S
            paused = segment.start - end >= _PAUSE_S
            ended = segment.start - start >= LINE_S / 2 and _SENTENCE_END.search(texts[-1]) is not None
            if not (full or paused or ended):
                texts.append(text)
                lines[-1] = (start, texts, segment.start + segment.duration)
                continue
        lines.append((segment.start, [text], segment.start + segment.duration))
    return [(start, " ".join(texts)) for start, texts, _ in lines]


def _video_block(meta: VideoMeta, transcript: Transcript, language: str) -> str:
    video = [f"title: {one_line(meta.display_title)}", f"video_id: {meta.video_id}"]
    if meta.channel:
        video.append(f"channel: {one_line(meta.channel)}")
    duration = meta.duration if meta.duration is not None else transcript.end
    video += [f"duration: {format_clock(duration)}", f"notes_language: {language}"]
    if meta.chapters:
        video.append("chapters:")
        video.extend(f"[{int(chapter.start)}s] {one_line(chapter.title)}" for chapter in meta.chapters)
    return "<video>\n" + "\n".join(video) + "\n</video>"


def _time_range(start: float, end: float) -> str:
    return f'from="{int(start)}s" to="{int(end)}s"'


def build_material(
    meta: VideoMeta, transcript: Transcript, language: str, *, section: tuple[float, float] | None = None
) -> str:
    """The video's context, then its transcript as `[SECONDSs] text` lines (a section with its time range)."""
    kind = "automatic" if transcript.is_generated else "manual"
    attributes = f'language="{transcript.language}" captions="{kind}"'
    if section is not None:
        attributes += " " + _time_range(*section)
    lines = "\n".join(f"[{int(start)}s] {text}" for start, text in transcript_lines(transcript))
    return f"{_video_block(meta, transcript, language)}\n\n<transcript {attributes}>\n{lines}\n</transcript>"


def _digest_section(note: StudyNote) -> list[str]:
    lines = [f"summary: {note.summary}"]
    if note.key_concepts:
        lines.append("key concepts:")
        lines += [f"- [{c.second}s] {c.term}: {c.definition}" for c in note.key_concepts]
    lines.append("outline:")
    for item in note.outline:
        lines.append(f"- [{item.second}s] {item.title}")
        lines += [f"  - [{point.second}s] {point.text}" for point in item.points]
    if note.worked_examples:
        lines.append("worked examples:")
        lines += [f"- [{e.second}s] {e.problem} Result: {e.result}" for e in note.worked_examples]
    if note.misconceptions:
        lines.append("misconceptions:")
        lines += [f"- {m.mistake} Correct view: {m.correction}" for m in note.misconceptions]
    return lines


def build_digest(
    meta: VideoMeta,
    transcript: Transcript,
    language: str,
    sections: Sequence[tuple[tuple[float, float], StudyNote]],
) -> str:
    """The video's context, then the checked notes on each of its sections, with their time ranges."""
    parts = [
        f"<section {_time_range(*span)}>\n" + "\n".join(_digest_section(note)) + "\n</section>"
        for span, note in sections
    ]
    return (
        f"{_video_block(meta, transcript, language)}\n\n<section_notes>\n"
        + "\n".join(parts)
        + "\n</section_notes>"
    )


def request_params(
    *,
    model: str,
    max_tokens: int,
    tool: Tool,
    tools: Sequence[Tool],
    material: str,
    task: str,
    cache: bool,
) -> dict[str, Any]:
    """One Messages request: the tools, the rules and the material (cached when `cache`), the task."""
    block: dict[str, Any] = {"type": "text", "text": material}
    if cache:
        block["cache_control"] = {"type": "ephemeral"}
    return {
        "model": model,
        "max_tokens": max_tokens,
        "tools": [tool_definition(each) for each in tools],
        "tool_choice": {"type": "tool", "name": tool.value, "disable_parallel_tool_use": True},
        "system": [{"type": "text", "text": SYSTEM_PROMPT}, block],
        "messages": [{"role": "user", "content": task}],
    }


def with_repair(
    params: dict[str, Any], content: Sequence[dict[str, Any]], text: str, *, cut_off: bool
) -> dict[str, Any]:
    """The request once more for a repair: with the answer it got (`content`) and what was wrong (`text`).

    A tool call that failed the checks goes back as the assistant's turn, answered by an error result
    holding `text`; a text answer goes back as it was, followed by `text`. A cut-off answer is not sent back
    (its input is incomplete): the task asks again for a more concise answer, with twice the output budget.
    """
    task = params["messages"][0]
    repaired = dict(params)
    calls = [block for block in content if block["type"] == "tool_use"]
    if cut_off:
        repaired["max_tokens"] = 2 * params["max_tokens"]
        repaired["messages"] = [{"role": "user", "content": f"{task['content']}\n\n{text}"}]
    elif calls:
        result = {"type": "tool_result", "tool_use_id": calls[0]["id"], "is_error": True, "content": text}
        repaired["messages"] = [
            task,
            {"role": "assistant", "content": list(content)},
            {"role": "user", "content": [result]},
        ]
    elif content:
        repaired["messages"] = [
            task,
            {"role": "assistant", "content": list(content)},
            {"role": "user", "content": text},
        ]
    else:
        repaired["messages"] = [{"role": "user", "content": f"{task['content']}\n\n{text}"}]
    return repaired


def estimate_request(material: str, tools: Sequence[Tool], task: str) -> int:
    """A safe (high) estimate of the input tokens of a request with this material, tools and task."""
    definitions = json.dumps([tool_definition(tool) for tool in tools])
    return estimate_tokens(SYSTEM_PROMPT + material + task + definitions)


def probe_params(model: str) -> dict[str, Any]:
    """The cheapest request that proves `model` answers a forced tool call: one output token."""
    return {
        "model": model,
        "max_tokens": 1,
        "tools": [{"name": "ready", "description": "Say you are ready.", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "ready"},
        "messages": [{"role": "user", "content": "Call ready."}],
    }
