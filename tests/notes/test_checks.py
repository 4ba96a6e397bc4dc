"""Tests for studybuddy.note_checks: seconds placed on captions, items that cannot be placed dropped, the
structure checked, and the repair text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from studybuddy.models import Segment, Transcript
from studybuddy.notes.checks import REQUIRED, SNAP_S, Captions, check_answer, has_speech, repair_text
from studybuddy.schema import Assessment, Concept, OutlineItem, Point, Question, StudyNote, Tool

SEGMENTS = (
    Segment(0.0, 4.0, "welcome to the lecture"),
    Segment(4.32, 3.0, "vectors add tip to tail"),
    Segment(7.5, 2.0, "[Music]"),
    Segment(20.0, 10.0, "a long caption about matrices"),
    Segment(31.0, 3.0, "the end"),
)
CAPTIONS = Captions(SEGMENTS, end=40.0)


def test_a_second_lands_on_a_caption_that_starts_at_it_or_just_after_it() -> None:
    assert CAPTIONS.place(0) == 0
    assert CAPTIONS.place(4) == 4  # [4s] copied for the caption at 4.32 s: at the caption (rounded down)
    assert CAPTIONS.place(18) == 20  # 2 s before a caption
    assert CAPTIONS.place(29) == 31  # inside a caption, but the next one starts within 2 s
    assert SNAP_S == 2.0


def test_a_second_inside_a_caption_moves_back_to_its_start() -> None:
    assert CAPTIONS.place(25) == 20
    assert CAPTIONS.place(33) == 31


def test_a_second_past_the_end_in_a_silence_or_at_a_sound_is_not_placed() -> None:
    assert CAPTIONS.place(41) is None
    assert "past the end (00:40)" in CAPTIONS.why_not(41)
    assert CAPTIONS.place(-1) is None
    assert CAPTIONS.place(12) is None  # [Music] at 7.5-9.5 s is no speech, nothing starts by 14 s
    assert "at no caption" in CAPTIONS.why_not(12)
    assert CAPTIONS.place(36) is None  # after the last caption's end, before the video's


def test_no_second_is_moved_past_the_end() -> None:
    late = Captions((Segment(0.0, 1.0, "early"), Segment(41.0, 2.0, "after the end")), end=40.0)
    assert late.place(39) is None  # the next caption starts within 2 s, but past the video's end


def test_a_chapters_start_is_a_place_speech_or_not() -> None:
    with_chapter = Captions(SEGMENTS, end=40.0, marks=[12.4, 99.0])  # the second is past the end
    assert with_chapter.place(12) == 12  # in the [Music] break, where the chapter starts
    assert with_chapter.place(13) is None
    assert with_chapter.place(99) is None


def test_speech_is_words_not_sound_tags() -> None:
    def transcript(*texts: str) -> Transcript:
        return Transcript("x", "English", "en", True, tuple(Segment(i, 1, t) for i, t in enumerate(texts)))

    assert has_speech(transcript("[Music]", "ok"))
    assert not has_speech(transcript("[Music]", "♪ ♪", "  "))
    assert not has_speech(transcript())


def note(**parts: object) -> StudyNote:
    defaults: dict[str, object] = {
        "summary": "Vectors.",
        "key_concepts": (Concept("vector", "An arrow.", 4),),
        "outline": (OutlineItem(0, "Intro", (Point(4, "Tip to tail."),)), OutlineItem(20, "Matrices")),
    }
    return StudyNote(**{**defaults, **parts})  # type: ignore[arg-type]


def test_a_good_answer_passes_with_its_seconds_placed() -> None:
    checked = check_answer(note(outline=(OutlineItem(3, "Intro"), OutlineItem(25, "Matrices"))), CAPTIONS, ())
    assert checked.ok and checked.dropped == []
    assert [item.second for item in checked.note.outline] == [4, 20]


def test_items_that_cannot_be_placed_are_dropped_and_named() -> None:
    answer = note(
        key_concepts=(Concept("vector", "An arrow.", 4), Concept("tensor", "Later.", 400)),
        review_questions=(Question("Why?", "Because.", 31), Question("How?", "So.", 12)),
    )
    checked = check_answer(answer, CAPTIONS, REQUIRED[Tool.SECTION])
    assert checked.ok
    assert [c.term for c in checked.note.key_concepts] == ["vector"]
    assert [q.second for q in checked.note.review_questions] == [31]
    assert checked.dropped == [
        "key concept “tensor”: 400 s is past the end (00:40)",
        "review question 2: 12 s is at no caption (no speech starts within 2 s of it)",
    ]


def test_outline_seconds_must_increase() -> None:
    checked = check_answer(note(outline=(OutlineItem(20, "Matrices"), OutlineItem(0, "Intro"))), CAPTIONS, ())
    assert not checked.ok
    assert checked.problems == [
        "outline item “Intro” at 00:00 does not come after “Matrices” at 00:20: outline seconds must increase"
    ]


def test_an_outline_point_outside_its_item_is_dropped_and_points_come_in_order() -> None:
    outline = (
        OutlineItem(0, "Intro", (Point(4, "b"), Point(0, "a"), Point(25, "too late"))),
        OutlineItem(20, "Matrices", (Point(31, "d"),)),
    )
    checked = check_answer(note(outline=outline), CAPTIONS, ())
    assert [p.text for p in checked.note.outline[0].points] == ["a", "b"]
    assert checked.dropped == ["point 3 of outline item “Intro”: 20 s is outside its item (00:00-00:20)"]


def test_a_required_part_left_empty_is_a_problem_even_after_dropping() -> None:
    answer = note(key_concepts=(Concept("tensor", "Later.", 400),), connections=())
    checked = check_answer(answer, CAPTIONS, REQUIRED[Tool.NOTE])
    assert "`key_concepts` is empty: it must hold at least one entry" in checked.problems
    assert "`connections` is empty: it must hold at least one entry" in checked.problems
    groups = Assessment(gap_analysis=(Question("Q", "A", 0),))
    checked = check_answer(StudyNote(assessment=groups), CAPTIONS, REQUIRED[Tool.ASSESSMENT])
    assert [p.split("`")[1] for p in checked.problems] == ["application", "one_step_further", "synthesis"]


def test_an_answer_with_mostly_bad_seconds_needs_a_repair() -> None:
    outline = (*(OutlineItem(100 + i, f"part {i}") for i in range(3)), OutlineItem(20, "ok"))
    checked = check_answer(note(outline=outline), CAPTIONS, ())
    assert "3 of 5 seconds are past the end or at no caption" in checked.problems[-1]


def test_the_repair_text_lists_what_was_wrong_and_what_was_left_out() -> None:
    text = repair_text(Tool.NOTE, ["`outline` is empty"], ["key concept “x”: 400 s is past the end (00:40)"])
    assert "- `outline` is empty" in text
    assert "- key concept “x”: 400 s is past the end (00:40)" in text
    assert "Call write_note again with the whole corrected answer" in text


@given(st.lists(st.integers(min_value=-50, max_value=100), max_size=12))
def test_every_placed_second_is_at_a_speech_captions_start(seconds: list[int]) -> None:
    answer = note(
        key_concepts=tuple(Concept(f"t{i}", "d", s) for i, s in enumerate(seconds)),
        outline=tuple(OutlineItem(s, f"p{i}") for i, s in enumerate(sorted(set(seconds)))),
    )
    checked = check_answer(answer, CAPTIONS, ())
    starts = {0, 4, 20, 31}
    placed = [c.second for c in checked.note.key_concepts] + [i.second for i in checked.note.outline]
    assert set(placed) <= starts
    assert len(checked.note.key_concepts) + len(checked.dropped) >= len(seconds)
    outline = [item.second for item in checked.note.outline]
    assert outline == sorted(set(outline)) or any("must increase" in p for p in checked.problems)
