"""The offline engine on real-looking lectures: manual captions, automatic lower-case captions, chapters."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studybuddy.config import Settings
from studybuddy.errors import NotesError
from studybuddy.models import Chapter, Segment, Transcript, VideoMeta
from studybuddy.notes.offline import BLANK, OFFLINE_MODEL, OfflineEngine, OfflineNote, extract_note
from studybuddy.notes.offline_text import ENGLISH_STOPWORDS, split_sentences
from studybuddy.runs.runner import build_engine
from studybuddy.store.render import render_body

DATA = Path(__file__).parents[1] / "data" / "transcripts"
LECTURES = ("gradient", "photosynthesis", "markets")
LINK = re.compile(r"\]\(https://youtu\.be/(?P<id>[\w-]+)\?t=(?P<seconds>\d+)\)")


def lecture(name: str) -> tuple[VideoMeta, Transcript]:
    data = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    meta = VideoMeta(
        data["video_id"],
        title=data["title"],
        duration=data["duration"],
        chapters=tuple(Chapter(c["start"], c["title"]) for c in data["chapters"]),
    )
    segments = tuple(Segment(s["start"], s["duration"], s["text"]) for s in data["segments"])
    transcript = Transcript(
        data["video_id"], data["language"], data["language_code"], data["is_generated"], segments
    )
    return meta, transcript


def markdown_of(meta: VideoMeta, transcript: Transcript) -> str:
    """The offline note's body as the one renderer writes it."""
    return render_body(OfflineEngine().generate(meta, transcript).note, meta.video_id)


def normalised(text: str) -> str:
    return " ".join(text.split())


def section(markdown: str, heading: str) -> str:
    """The text under `## heading`, up to the next `## `."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))[heading]


def every_sentence(note: OfflineNote) -> list[str]:
    return [
        *(s.text for s in note.summary),
        *(t.definition.text for t in note.key_terms),
        *(p.text for part in note.outline for p in part.points),
        *(q.source.text for q in note.questions),
    ]


@pytest.mark.parametrize("name", LECTURES)
def test_every_sentence_shown_is_the_speakers_own(name: str) -> None:
    meta, transcript = lecture(name)
    note = extract_note(meta, transcript)
    spoken = normalised(transcript.text)
    assert len(note.summary) >= 3
    for text in every_sentence(note):
        assert normalised(text) in spoken
        assert "[Music]" not in text and "[Applause]" not in text


@pytest.mark.parametrize("name", LECTURES)
def test_outline_timestamps_never_go_back_and_stay_in_the_video(name: str) -> None:
    meta, transcript = lecture(name)
    markdown = markdown_of(meta, transcript)
    links = [(m["id"], int(m["seconds"])) for m in LINK.finditer(section(markdown, "Outline"))]
    seconds = [s for _, s in links]
    assert len(links) >= 2
    assert {video_id for video_id, _ in links} == {meta.video_id}
    assert seconds == sorted(seconds)
    every_link = [int(m["seconds"]) for m in LINK.finditer(markdown)]
    assert all(0 <= s <= (meta.duration or 0) for s in every_link)


@pytest.mark.parametrize("name", LECTURES)
def test_each_cloze_answer_is_in_its_sentence_and_blanked_out_of_the_question(name: str) -> None:
    meta, transcript = lecture(name)
    note = extract_note(meta, transcript)
    assert len(note.questions) >= 3
    assert len({q.answer.lower() for q in note.questions}) == len(note.questions)
    for question in note.questions:
        assert question.answer in question.source.text
        assert BLANK in question.prompt
        assert re.search(rf"(?<!\w){re.escape(question.answer)}(?!\w)", question.prompt, re.I) is None
        pieces = question.prompt.split(BLANK)
        assert all(piece in question.source.text for piece in pieces)


@pytest.mark.parametrize("name", LECTURES)
def test_key_terms_are_content_words_and_their_definitions_mention_them(name: str) -> None:
    meta, transcript = lecture(name)
    note = extract_note(meta, transcript)
    assert len(note.key_terms) >= 4
    terms = [t.term for t in note.key_terms]
    assert len(set(terms)) == len(terms)
    for term in note.key_terms:
        assert not set(term.term.split()) & ENGLISH_STOPWORDS
        singular_words = [word.rstrip("s") for word in term.term.split()]
        assert all(word in term.definition.text.lower() for word in singular_words)


@pytest.mark.parametrize("name", LECTURES)
def test_notes_are_deterministic_and_laid_out_like_the_anthropic_engine(name: str) -> None:
    meta, transcript = lecture(name)
    first = OfflineEngine().generate(meta, transcript)
    second = OfflineEngine().generate(meta, transcript)
    assert first == second
    assert first.model == OFFLINE_MODEL
    markdown = markdown_of(meta, transcript)
    headings = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert headings == ["## Summary", "## Key concepts", "## Outline", "## Review questions"]
    questions = section(markdown, "Review questions")
    callouts = re.findall(r"^\d+\. .+\n> \[!question\]- Answer\n> .+\(\[\d+:\d+\]\(.+\)\)$", questions, re.M)
    assert len(callouts) == len(extract_note(meta, transcript).questions)


def test_chapters_become_the_outline() -> None:
    meta, transcript = lecture("markets")
    note = extract_note(meta, transcript)
    assert [(s.start, s.title) for s in note.outline] == [(c.start, c.title) for c in meta.chapters]
    for part, following in zip(note.outline, [*note.outline[1:], None], strict=True):
        assert part.points
        assert all(
            part.start <= p.start < (following.start if following else meta.duration or 0)
            for p in part.points
        )


def test_speech_before_the_first_chapter_gets_its_own_section() -> None:
    meta, transcript = lecture("markets")
    late = replace(meta, chapters=meta.chapters[1:])
    note = extract_note(late, transcript)
    assert [s.title for s in note.outline[1:]] == [c.title for c in late.chapters]
    assert note.outline[0].start == 0 and note.outline[0].title not in {c.title for c in late.chapters}


def test_no_chapter_heading_is_left_empty() -> None:
    meta, transcript = lecture("markets")
    end = meta.duration or transcript.end
    silent_start = transcript.segments[-1].start + transcript.segments[-1].duration + 1
    short = Segment(silent_start + 20, 2.0, "Okay, thanks!")
    chapters = (*meta.chapters, Chapter(silent_start, "Music break"), Chapter(silent_start + 20, "Goodbye"))
    longer = replace(meta, duration=max(end, silent_start + 60), chapters=chapters)
    note = extract_note(longer, replace(transcript, segments=(*transcript.segments, short)))
    parts = {part.title: part for part in note.outline}
    assert parts["Music break"].points == ()
    assert [point.text for point in parts["Goodbye"].points] == ["Okay, thanks!"]  # short, but what is said
    markdown = markdown_of(longer, replace(transcript, segments=(*transcript.segments, short)))
    outline = section(markdown, "Outline")
    blocks = re.split(r"^### .+$", outline, flags=re.M)[1:]
    assert len(blocks) == len(chapters) and all(block.strip() for block in blocks)
    assert re.search(r"^### \[.+\) Music break\n\n- \[.+\) _No speech in this chapter\._$", outline, re.M)


def test_topic_shifts_split_a_video_without_chapters_where_the_topic_changes() -> None:
    """Three lectures back to back: the outline starts new sections close to where each lecture begins."""
    segments: list[Segment] = []
    joins: list[float] = []
    offset = 0.0
    for name in LECTURES:
        _, transcript = lecture(name)
        joins.append(offset)
        segments += [replace(s, start=s.start + offset) for s in transcript.segments]
        offset += transcript.end + 5
    meta = VideoMeta("threeTopics", title="three lectures", duration=offset)
    note = extract_note(meta, Transcript("threeTopics", "English", "en", False, tuple(segments)))
    starts = [part.start for part in note.outline]
    assert 3 <= len(starts) <= 6
    for join in joins:
        assert min(abs(start - join) for start in starts) < 30, (join, starts)


def test_automatic_captions_without_punctuation_become_sentences() -> None:
    _, transcript = lecture("photosynthesis")
    sentences = split_sentences(transcript.segments, video_end=transcript.end)
    lengths = [len(s.text.split()) for s in sentences]
    assert len(sentences) >= 10
    assert max(lengths) <= 60
    assert all("[" not in s.text for s in sentences)
    assert [s.start for s in sentences] == sorted(s.start for s in sentences)
    assert normalised(" ".join(s.text for s in sentences)) == normalised(
        re.sub(r"\[\w+\]", " ", transcript.text)
    )


@pytest.mark.parametrize(
    "texts",
    [[], ["[Music]"], ["[Music]", "[Applause]", "♪ ♪", "(music playing)"], ["  ", ">>"]],
    ids=["empty", "music", "only-non-speech", "blank"],
)
def test_a_transcript_without_speech_is_a_clear_error(texts: list[str]) -> None:
    segments = tuple(Segment(4.0 * i, 4.0, text) for i, text in enumerate(texts))
    transcript = Transcript("noSpeech001", "English", "en", True, segments)
    with pytest.raises(NotesError, match=r"^noSpeech001: transcript has no speech"):
        OfflineEngine().generate(VideoMeta("noSpeech001"), transcript)


@pytest.mark.parametrize(
    ("language_code", "texts", "term"),
    [
        (
            "de",
            [
                "Die Photosynthese wandelt Licht in Energie um.",
                "Die Pflanze nutzt dafür das Chlorophyll.",
                "Die Energie wird als Zucker gespeichert.",
            ],
            "energie",
        ),
        ("es", ["La fotosíntesis convierte la luz en energía química."], "fotosíntesis"),
        ("ja", ["光合成は光をエネルギーに変えます。", "葉緑素が光を集めます。"], "葉緑素が光を集めます"),
        ("fr", ["Bonjour!", "La cellule.", "La cellule a un noyau.", "La cellule se divise."], "cellule"),
        ("en", ["Thank you so much."], "thank"),  # nothing but stopwords: its words are all it has
    ],
    ids=["german-3", "spanish-1", "japanese-2", "french-4", "english-stopwords-only"],
)
def test_a_short_transcript_in_any_language_gets_a_note(
    language_code: str, texts: list[str], term: str
) -> None:
    segments = tuple(Segment(3.0 * i, 3.0, text) for i, text in enumerate(texts))
    transcript = Transcript("shortClip01", language_code, language_code, False, segments)
    meta = VideoMeta("shortClip01", title="a short", duration=3.0 * len(texts))

    note = extract_note(meta, transcript)

    assert note.summary and note.outline
    assert all(sentence.text in " ".join(texts) for sentence in note.summary)
    markdown = markdown_of(meta, transcript)
    assert "## Summary" in markdown and term in markdown.lower()


def test_a_ten_hour_video_still_gets_a_bounded_note() -> None:
    """A long lecture series (more sentences than one centrality window) spread over ten hours."""
    segments: list[Segment] = []
    for repeat in range(24):
        for name in LECTURES:
            _, transcript = lecture(name)
            offset = repeat * 1500.0 + LECTURES.index(name) * 500.0
            segments += [replace(s, start=s.start + offset, text=s.text.lower()) for s in transcript.segments]
    meta = VideoMeta("tenHours001", title="marathon", duration=36_000.0)
    note = extract_note(meta, Transcript("tenHours001", "English", "en", True, tuple(segments)))
    assert 3 <= len(note.summary) <= 8
    assert 1 <= len(note.outline) <= 30
    assert len(note.questions) <= 8
    starts = [part.start for part in note.outline]
    assert starts == sorted(starts) and starts[-1] <= 36_000


def test_spoken_markdown_characters_cannot_become_tags_maths_or_html() -> None:
    text = "It costs $5 or $10, see <b>bold</b> and *stars* for #tags, ==marks== and a ] or [ too."
    segments = tuple(Segment(5.0 * i, 5.0, text) for i in range(6))
    transcript = Transcript("escapeTest1", "English", "en", False, segments)
    markdown = markdown_of(VideoMeta("escapeTest1"), transcript)
    spoken = [line for line in section(markdown, "Outline").splitlines() if line.startswith("- ")]
    spoken.append(section(markdown, "Summary").strip())
    assert len(spoken) >= 2
    for line in spoken:
        assert r"\$5 or \$10" in line and r"\<b\>bold\</b\>" in line and r"\*stars\*" in line
        assert r"\#tags" in line and r"\=\=marks\=\=" in line and r"a \] or \[ too" in line


def test_offline_notes_stay_in_the_transcripts_language(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="studybuddy.runs.runner"):
        assert isinstance(build_engine(Settings(notes_lang="de")), OfflineEngine)
    assert "--notes-lang de is ignored" in caplog.text
    meta, transcript = lecture("gradient")
    assert OfflineEngine().generate(meta, transcript).language == "en"


WORDS = st.sampled_from(
    [
        "gradient",
        "descent",
        "the",
        "is",
        "[Music]",
        "(applause)",
        ">>",
        "Rate.",
        "rate",
        "so",
        "é",
        "?",
        "-",
        "",
    ]
)
SEGMENTS = st.lists(
    st.builds(
        Segment,
        start=st.floats(min_value=-10, max_value=40_000, allow_nan=False),
        duration=st.floats(min_value=-1, max_value=30, allow_nan=False),
        text=st.lists(WORDS | st.text(max_size=12), max_size=12).map(" ".join),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(segments=SEGMENTS, duration=st.none() | st.floats(min_value=0, max_value=40_000))
def test_any_captions_give_a_note_or_a_notes_error(segments: list[Segment], duration: float | None) -> None:
    meta = VideoMeta("randomVideo", duration=duration, chapters=(Chapter(0, "Start"), Chapter(60, "Later")))
    transcript = Transcript("randomVideo", "English", "en", True, tuple(segments))
    try:
        markdown = markdown_of(meta, transcript)
    except NotesError as error:
        assert str(error).startswith("randomVideo: ")
        return
    limit = duration or transcript.end
    seconds = [int(m["seconds"]) for m in LINK.finditer(section(markdown, "Outline"))]
    assert seconds == sorted(seconds)
    assert all(0 <= s <= max(limit, 0) for s in seconds)
