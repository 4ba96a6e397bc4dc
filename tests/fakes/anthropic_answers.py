"""What the fake Anthropic API answers: notes, section notes, combined notes and assessments shaped like a
real model's, built from what the request sent so every timestamp link points at a second it really holds.

The kind of request is read from the task block (`# Task: ...`, the first line of each prompt file) and, for
a combined note, from the `<section_notes>` material.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_CAPTION_LINE = re.compile(r"^\[(\d+)s\] (.+)$", re.MULTILINE)
_TRANSCRIPT = re.compile(r"<transcript[^>]*>\n(.*?)\n</transcript>", re.DOTALL)
_VIDEO_ID = re.compile(r"^video_id: (\S+)$", re.MULTILINE)
_TASK = re.compile(r"^# Task: (.+)$", re.MULTILINE)
_LINK = re.compile(r"\]\(https://youtu\.be/[\w-]+\?t=(\d+)\)")


@dataclass(frozen=True, slots=True)
class Moment:
    second: int
    text: str

    def link(self, video_id: str) -> str:
        minutes, secs = divmod(self.second, 60)
        hours, minutes = divmod(minutes, 60)
        clock = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
        return f"[{clock}](https://youtu.be/{video_id}?t={self.second})"


def task_of(user_text: str) -> str:
    """`note`, `combine`, `section notes` or `assessment` (`note` when no task line is found)."""
    found = _TASK.findall(user_text)
    task = found[-1].strip() if found else "note"
    return "combine" if task == "note" and "<section_notes>" in user_text else task


def caption_count(user_text: str) -> int:
    """How many `[Ns] text` lines the request's transcript has."""
    transcript = _TRANSCRIPT.search(user_text)
    return len(_CAPTION_LINE.findall(transcript.group(1))) if transcript else 0


def _moments(user_text: str) -> list[Moment]:
    """The captions of the transcript, or (for a combined note) the moments the section notes link to."""
    transcript = _TRANSCRIPT.search(user_text)
    if transcript:
        return [Moment(int(s), text) for s, text in _CAPTION_LINE.findall(transcript.group(1))]
    return [Moment(int(second), f"the point made at {second}s") for second in _LINK.findall(user_text)]


def _spread(moments: Sequence[Moment], count: int) -> list[Moment]:
    """Up to `count` moments spread evenly from the first to the last."""
    if len(moments) <= count:
        return list(moments)
    step = (len(moments) - 1) / (count - 1)
    return [moments[round(index * step)] for index in range(count)]


def answer(user_text: str) -> str:
    """The text a model would answer to this request."""
    video = _VIDEO_ID.search(user_text)
    video_id = video.group(1) if video else "unknown"
    moments = _moments(user_text) or [Moment(0, "nothing was said")]
    task = task_of(user_text)
    if task == "assessment":
        return _assessment(video_id, moments)
    if task == "section notes":
        return _section(video_id, moments)
    return _note(video_id, moments)


def _outline(video_id: str, moments: Sequence[Moment]) -> str:
    return "\n".join(f"- {moment.link(video_id)} {moment.text}" for moment in moments)


def _note(video_id: str, moments: Sequence[Moment]) -> str:
    middle = moments[len(moments) // 2]
    term = middle.text.split()[0]
    return (
        f"## Summary\nThe video explains {middle.text.lower()}\n\n"
        f"## Key concepts\n- **{term}**: what the speaker introduces at {middle.link(video_id)}.\n\n"
        f"## Outline\n### Main ideas\n{_outline(video_id, _spread(moments, 12))}\n\n"
        f"## Worked examples\n- {middle.link(video_id)} The speaker works through {middle.text}.\n\n"
        f"## Common misconceptions\n- Thinking {term} is trivial: the video shows why it is not.\n\n"
        "## Connections\n- Prerequisites: the basics this video assumes.\n\n"
        f"## Review questions\n1. What does the speaker say about {term}? ({middle.text})\n"
    )


def _section(video_id: str, moments: Sequence[Moment]) -> str:
    first = moments[0]
    return (
        f"## Summary\nThis section covers {first.text.lower()}\n\n"
        f"## Key concepts\n- **{first.text.split()[0]}**: introduced here.\n\n"
        f"## Outline\n{_outline(video_id, _spread(moments, 3))}\n"
    )


def _assessment(video_id: str, moments: Sequence[Moment]) -> str:
    groups = ("Gap analysis", "Application", "One step further", "Synthesis")
    picked = _spread(moments, len(groups))
    parts = ["## Assessment"]
    for number, (group, moment) in enumerate(zip(groups, picked * len(groups), strict=False), start=1):
        parts.append(
            f"### {group}\n{number}. What follows from \u201c{moment.text}\u201d?\n"
            f"> [!question]- Answer\n> It follows from what is said at {moment.link(video_id)}."
        )
    return "\n\n".join(parts) + "\n"
