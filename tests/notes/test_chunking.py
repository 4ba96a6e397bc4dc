"""Tests for studybuddy.chunking: the token estimate and sections cut on caption boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from studybuddy.models import Segment, Transcript
from studybuddy.notes.chunking import estimate_tokens, halve, split_sections


def transcript_of(texts: list[str], step: float = 5.0) -> Transcript:
    segments = tuple(Segment(index * step, step, text) for index, text in enumerate(texts))
    return Transcript("vid00000001", "English", "en", False, segments)


def tokens(section: Transcript) -> int:
    return sum(estimate_tokens(segment.text) + 4 for segment in section.segments)


def test_estimate_errs_high_for_english_and_cjk() -> None:
    english = "the eigenvalue scales the eigenvector " * 100
    assert estimate_tokens(english) >= len(english) / 3.5  # Anthropic: ~3.5 English characters a token
    chinese = "特征值缩放特征向量" * 100
    assert estimate_tokens(chinese) >= len(chinese)  # about one token per CJK character
    assert estimate_tokens("") == 0


def test_a_transcript_within_the_budget_is_one_section() -> None:
    transcript = transcript_of(["short line"] * 10)
    assert split_sections(transcript, 10_000) == [transcript]


def test_sections_keep_absolute_times_in_order_and_balanced() -> None:
    transcript = transcript_of([f"caption number {index} with some words" for index in range(1000)])
    sections = split_sections(transcript, budget_tokens=3000)
    assert len(sections) == -(-tokens(transcript) // 3000)  # as few as the budget allows
    assert [s for section in sections for s in section.segments] == list(transcript.segments)
    assert all(tokens(section) <= 3000 for section in sections)
    sizes = [tokens(section) for section in sections]
    assert max(sizes) - min(sizes) <= 0.25 * max(sizes)
    assert sections[1].segments[0].start > 0  # a later section starts at its real second
    assert all(section.language == "English" and section.video_id == "vid00000001" for section in sections)


def test_a_caption_larger_than_the_budget_is_a_section_of_its_own() -> None:
    transcript = transcript_of(["small"] * 5 + ["huge " * 500] + ["small"] * 5)
    sections = split_sections(transcript, budget_tokens=50)
    huge = [section for section in sections if any("huge" in s.text for s in section.segments)]
    assert len(huge) == 1 and len(huge[0].segments) == 1
    assert [s for section in sections for s in section.segments] == list(transcript.segments)


def test_halve_makes_smaller_pieces() -> None:
    section = transcript_of([f"line {index} of the section" for index in range(40)])
    pieces = halve(section)
    assert len(pieces) >= 2
    assert all(tokens(piece) <= tokens(section) / 2 + 20 for piece in pieces)
    assert [s for piece in pieces for s in piece.segments] == list(section.segments)
    single = transcript_of(["only one caption"])
    assert halve(single) == [single]


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        split_sections(transcript_of(["x"]), 0)


@given(
    texts=st.lists(st.text(min_size=0, max_size=80), min_size=1, max_size=200),
    budget=st.integers(min_value=1, max_value=2000),
)
def test_sections_cover_every_caption_once_within_the_budget(texts: list[str], budget: int) -> None:
    transcript = transcript_of(texts)
    sections = split_sections(transcript, budget)
    assert [s for section in sections for s in section.segments] == list(transcript.segments)
    assert all(section.segments for section in sections)
    for section in sections:
        assert tokens(section) <= budget or len(section.segments) == 1
