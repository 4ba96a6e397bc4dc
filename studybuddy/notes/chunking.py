"""Long transcripts: a token estimate, and sections cut on caption (timestamp) boundaries.

Counting tokens exactly needs the API (`client.messages.count_tokens` is a network call), so the budget check
uses an estimate that errs on the safe side: one token per three UTF-8 bytes. Anthropic documents about 3.5
English characters per token; CJK text takes about one token per character, which is three UTF-8 bytes. A
transcript over the budget is cut into sections of about equal size; every section is itself a `Transcript`
that keeps the absolute start time of each caption, so notes written from a section link to the right second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from studybuddy.models import Segment, Transcript

__all__ = ["BYTES_PER_TOKEN", "estimate_tokens", "halve", "split_sections"]

BYTES_PER_TOKEN = 3
"""Fewer bytes per token than any common language really needs: the estimate over-counts, never under."""


def estimate_tokens(text: str) -> int:
    """A safe (high) estimate of how many tokens `text` costs the model."""
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


def _segment_tokens(segment: Segment) -> int:
    # `[12345s] ` before each caption and the line break after it.
    return estimate_tokens(segment.text) + 4


def split_sections(transcript: Transcript, budget_tokens: int) -> list[Transcript]:
    """Cut `transcript` into as few sections of about equal size as keep each under `budget_tokens`.

    Cuts fall between captions only, in time order. A single caption larger than the budget makes a section
    of its own (a caption is never cut). A transcript within the budget comes back as the only section.
    """
    if budget_tokens < 1:
        raise ValueError(f"budget_tokens must be positive, got {budget_tokens}")
    segments = sorted(transcript.segments, key=lambda segment: segment.start)
    sizes = [_segment_tokens(segment) for segment in segments]
    total = sum(sizes)
    if total <= budget_tokens:
        return [transcript]
    target = total / math.ceil(total / budget_tokens)
    groups: list[list[Segment]] = [[]]
    filled = 0
    for segment, size in zip(segments, sizes, strict=True):
        if groups[-1] and (filled + size > budget_tokens or filled + size / 2 > target):
            groups.append([])
            filled = 0
        groups[-1].append(segment)
        filled += size
    return [_section(transcript, group) for group in groups]


def halve(section: Transcript) -> list[Transcript]:
    """`section` cut into pieces of about half its size (one piece if it holds a single caption)."""
    size = sum(_segment_tokens(segment) for segment in section.segments)
    return split_sections(section, max(math.ceil(size / 2), 1))


def _section(transcript: Transcript, segments: Sequence[Segment]) -> Transcript:
    return replace(transcript, segments=tuple(segments))
