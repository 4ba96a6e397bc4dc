"""The offline note engine: extractive study notes from the transcript alone (no API key, no network).

    captions ─► sentences (punctuation, else pauses and length) ─► TF-IDF vectors of content words
      ├── summary         LexRank: PageRank over a sparse cosine graph (windowed for long videos),
      │                   most central sentences, skipping near-duplicates
      ├── key concepts    1-3 word phrases of content words (frequency x spread), each with its
      │                   most defining sentence
      ├── outline         the video's chapters (one without captions says so), else TextTiling: dips
      │                   in lexical cohesion between windows of sentences mark topic shifts
      └── review          cloze questions: a key term blanked out of a central sentence

Every sentence shown is the transcript's own words, timestamps never go backwards and never past the
video's end, and ties are broken by position: the same transcript always gives the same note.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from studybuddy.errors import NotesError
from studybuddy.models import NoteBody, Transcript, VideoMeta
from studybuddy.notes.checks import Captions, check_answer
from studybuddy.notes.offline_text import PhraseIndex, Sentence, split_sentences, tfidf_vectors
from studybuddy.schema import Concept, OutlineItem, Point, Question, StudyNote, fold_outline
from studybuddy.text import one_line

__all__ = [
    "BLANK",
    "NO_SPEECH",
    "OFFLINE_MODEL",
    "Cloze",
    "KeyTerm",
    "OfflineEngine",
    "OfflineNote",
    "Section",
    "extract_note",
    "study_note",
]

OFFLINE_MODEL = "offline-extractive-v1"
BLANK = "_____"
NO_SPEECH = "_No speech in this chapter._"

_GRAPH_WINDOW = 400  # sentences ranked together: bounds the cost of a 10-hour video
_NEIGHBOURS = 10  # strongest links kept per sentence in the centrality graph
_DAMPING = 0.85
_RANK_ROUNDS = 50
_REDUNDANT = 0.5  # cosine above which a sentence repeats one already picked
_MIN_POINT_WORDS = 5  # content words a summary or outline sentence needs
_DEFINED_AFTER = r"\s+(?:is|are|means|refers to|describes|stands for)\b"  # "X is ...", "X means ..."
_DEFINED_BEFORE = r"\b(?:called|known as|defined as)\s+"  # "... is called X"
_MARKDOWN_SPECIAL = re.compile(r"[\\`*\[\]<>#$|]|==|~~|%%")
_REQUIRED = ("summary", "outline")  # an extractive note has no misconceptions, connections or examples

Vector = dict[str, float]


@dataclass(frozen=True, slots=True)
class KeyTerm:
    term: str  # lower case, as spoken most often
    score: float
    definition: Sentence  # the sentence that best explains it


@dataclass(frozen=True, slots=True)
class Section:
    start: float
    title: str
    points: tuple[Sentence, ...]


@dataclass(frozen=True, slots=True)
class Cloze:
    source: Sentence
    answer: str  # exactly as written in the source sentence
    prompt: str  # the source sentence with every occurrence of the answer blanked out


@dataclass(frozen=True, slots=True)
class OfflineNote:
    summary: tuple[Sentence, ...]
    key_terms: tuple[KeyTerm, ...]
    outline: tuple[Section, ...]
    questions: tuple[Cloze, ...]


class OfflineEngine:
    """Writes extractive notes locally; stateless, so one instance serves every worker thread."""

    name = "offline"

    def check(self) -> None:
        """Nothing can be missing: no key, no model, no network."""

    def generate(self, meta: VideoMeta, transcript: Transcript) -> NoteBody:
        """The extracted note, checked against the transcript like any engine's (no link to a bad second)."""
        captions = Captions.of(transcript, meta.duration, meta.chapters)
        checked = check_answer(study_note(extract_note(meta, transcript)), captions, _REQUIRED)
        if not checked.ok:
            raise NotesError(f"{meta.video_id}: the extracted note failed its checks: {checked.problems[0]}")
        return NoteBody(checked.note, OFFLINE_MODEL, language=transcript.language_code)

    def close(self) -> None:
        """Nothing to release."""


def extract_note(meta: VideoMeta, transcript: Transcript) -> OfflineNote:
    """The structured note of one video; NotesError when the transcript has no words to work with."""
    video_end = meta.duration if meta.duration else transcript.end
    sentences = split_sentences(transcript.segments, video_end=video_end)
    phrases = PhraseIndex(sentences, transcript.language_code)
    if not phrases.has_content:
        raise NotesError(f"{meta.video_id}: transcript has no speech to take notes from")
    vectors = tfidf_vectors(phrases.words)
    centrality = _centrality(vectors)
    key_terms = _key_terms(sentences, phrases, centrality)
    return OfflineNote(
        summary=_summary(sentences, vectors, centrality, phrases),
        key_terms=key_terms,
        outline=_outline(meta, video_end, sentences, vectors, centrality, phrases),
        questions=_cloze_questions(sentences, centrality, key_terms, phrases),
    )


# --- centrality (LexRank) ---------------------------------------------------------------------------------


def _centrality(vectors: Sequence[Vector]) -> list[float]:
    """Each sentence's LexRank score, scaled so the average sentence of its window scores 1."""
    scores: list[float] = []
    for first in range(0, len(vectors), _GRAPH_WINDOW):
        window = vectors[first : first + _GRAPH_WINDOW]
        scores.extend(score * len(window) for score in _pagerank(_sparse_graph(window)))
    return scores


def _sparse_graph(vectors: Sequence[Vector]) -> list[dict[int, float]]:
    """Cosine similarities, keeping each sentence's strongest links (made symmetric)."""
    postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for index, vector in enumerate(vectors):
        for word, weight in vector.items():
            postings[word].append((index, weight))
    graph: list[dict[int, float]] = [{} for _ in vectors]
    for index, vector in enumerate(vectors):
        similarity: dict[int, float] = defaultdict(float)
        for word, weight in vector.items():
            for other, other_weight in postings[word]:
                if other != index:
                    similarity[other] += weight * other_weight
        strongest = sorted(similarity.items(), key=lambda item: (-item[1], item[0]))[:_NEIGHBOURS]
        for other, value in strongest:
            graph[index][other] = graph[other][index] = value
    return graph


def _pagerank(graph: Sequence[dict[int, float]]) -> list[float]:
    size = len(graph)
    scores = [1.0 / size] * size
    out_weight = [sum(edges.values()) for edges in graph]
    for _ in range(_RANK_ROUNDS):
        updated = [(1.0 - _DAMPING) / size] * size
        dangling = sum(score for score, total in zip(scores, out_weight, strict=True) if total == 0)
        for index, edges in enumerate(graph):
            if out_weight[index]:
                share = _DAMPING * scores[index] / out_weight[index]
                for other, weight in edges.items():
                    updated[other] += share * weight
        spread = _DAMPING * dangling / size
        updated = [score + spread for score in updated]
        change = sum(abs(new - old) for new, old in zip(updated, scores, strict=True))
        scores = updated
        if change < 1e-9:
            break
    return scores


def _ranked(indices: Iterable[int], centrality: Sequence[float], phrases: PhraseIndex) -> list[int]:
    """Sentences with enough substance, most central first (earlier first on ties)."""
    eligible = [i for i in indices if len(phrases.words[i]) >= _MIN_POINT_WORDS]
    return sorted(eligible, key=lambda i: (-centrality[i], i))


def _pick_diverse(candidates: Iterable[int], vectors: Sequence[Vector], count: int) -> list[int]:
    picked: list[int] = []
    for index in candidates:
        if len(picked) == count:
            break
        if all(_cosine(vectors[index], vectors[other]) < _REDUNDANT for other in picked):
            picked.append(index)
    return sorted(picked)


def _cosine(left: Vector, right: Vector) -> float:
    """Cosine of two vectors (TF-IDF vectors are unit length, window sums are not)."""
    if len(left) > len(right):
        left, right = right, left
    dot = sum(weight * right.get(word, 0.0) for word, weight in left.items())
    norms = math.sqrt(sum(w * w for w in left.values()) * sum(w * w for w in right.values()))
    return dot / norms if norms else 0.0


# --- sections -------------------------------------------------------------------------------------------


def _summary(
    sentences: Sequence[Sentence],
    vectors: Sequence[Vector],
    centrality: Sequence[float],
    phrases: PhraseIndex,
) -> tuple[Sentence, ...]:
    count = min(8, max(3, round(math.sqrt(len(sentences)) / 2)))
    picked = _pick_diverse(_ranked(range(len(sentences)), centrality, phrases), vectors, count)
    return tuple(sentences[i] for i in picked or _most_central(range(len(sentences)), centrality))


def _most_central(indices: range, centrality: Sequence[float]) -> list[int]:
    """Only short sentences: the most central of them still says something (none for no sentences)."""
    return [max(indices, key=lambda i: (centrality[i], -i))] if indices else []


def _key_terms(
    sentences: Sequence[Sentence], phrases: PhraseIndex, centrality: Sequence[float]
) -> tuple[KeyTerm, ...]:
    count = min(12, max(5, len(sentences) // 3))
    terms: list[KeyTerm] = []
    for key, score in phrases.top_phrases(count):
        where = phrases.sentences_with(key)
        defining = max(
            where, key=lambda i: (_defines(sentences[i].text, phrases.surface(key)), centrality[i], -i)
        )
        terms.append(KeyTerm(phrases.surface(key), score, sentences[defining]))
    return tuple(terms)


def _defines(text: str, term: str) -> bool:
    """Does the sentence read like a definition of `term` ("X is ...", "X means ...", "called X")?"""
    words = _term_words(term)
    after = re.search(rf"(?<!\w){words}{_DEFINED_AFTER}", text, re.IGNORECASE)
    return bool(after or re.search(rf"{_DEFINED_BEFORE}(?:the |an? )?{words}(?!\w)", text, re.IGNORECASE))


def _outline(
    meta: VideoMeta,
    video_end: float,
    sentences: Sequence[Sentence],
    vectors: Sequence[Vector],
    centrality: Sequence[float],
    phrases: PhraseIndex,
) -> tuple[Section, ...]:
    """One section per chapter when the video has chapters, else one per topic found in the transcript."""
    chapters = sorted({c.start: c.title for c in meta.chapters if 0 <= c.start < video_end}.items())
    if chapters:
        starts = [start for start, _ in chapters]
        spans = _spans_by_time(sentences, starts)
        titles: list[str | None] = [one_line(title) or None for _, title in chapters]
        if spans[0][0] < spans[0][1]:
            starts, titles = [sentences[0].start, *starts], [None, *titles]  # speech before chapter 1
        else:
            spans = spans[1:]
    else:
        boundaries = _topic_boundaries(vectors, video_end)
        spans = list(zip([0, *boundaries], [*boundaries, len(sentences)], strict=True))
        starts = [sentences[first].start for first, _ in spans]
        titles = [None] * len(spans)
    sections = []
    for number, ((first, last), start, title) in enumerate(zip(spans, starts, titles, strict=True), start=1):
        members = range(first, last)
        point_count = min(4, max(1, len(members) // 6))
        points = _pick_diverse(_ranked(members, centrality, phrases), vectors, point_count)
        points = points or _most_central(members, centrality)  # a chapter without speech keeps none
        name = title or phrases.title_for(members) or f"Part {number}"
        sections.append(Section(start, name, tuple(sentences[i] for i in points)))
    return tuple(sections)


def _spans_by_time(sentences: Sequence[Sentence], starts: Sequence[float]) -> list[tuple[int, int]]:
    """[before the first start, then one span per start): sentence index ranges by start time."""
    cuts = [0]
    for start in starts:
        position = cuts[-1]
        while position < len(sentences) and sentences[position].start < start:
            position += 1
        cuts.append(position)
    cuts.append(len(sentences))
    return list(itertools.pairwise(cuts))


def _topic_boundaries(vectors: Sequence[Vector], video_end: float) -> list[int]:
    """TextTiling: sentence indices where a new topic starts (the deepest cohesion dips, well apart)."""
    size = len(vectors)
    window = min(8, max(3, size // 12))
    wanted = min(30, max(1, round(video_end / 240)))  # about one section per 4 minutes
    if size < 2 * window or wanted == 1:
        return []
    gaps = range(window, size - window + 1)
    cohesion = [_cosine(_sum(vectors[g - window : g]), _sum(vectors[g : g + window])) for g in gaps]
    smooth = [
        sum(cohesion[max(i - 1, 0) : i + 2]) / len(cohesion[max(i - 1, 0) : i + 2])
        for i in range(len(cohesion))
    ]
    depths = _depths(smooth)
    mean = sum(depths) / len(depths)
    cutoff = mean - math.sqrt(sum((d - mean) ** 2 for d in depths) / len(depths)) / 2
    chosen: list[int] = []
    for depth, position in sorted(
        ((d, i) for i, d in enumerate(depths)), key=lambda item: (-item[0], item[1])
    ):
        if len(chosen) == wanted - 1 or depth <= max(cutoff, 0.0):
            break
        boundary = gaps[position]
        if all(abs(boundary - other) >= window for other in chosen):
            chosen.append(boundary)
    return sorted(chosen)


def _depths(scores: Sequence[float]) -> list[float]:
    """How far each cohesion score dips below the highest scores on its left and on its right."""
    left_peaks = list(itertools.accumulate(scores, max))
    right_peaks = list(itertools.accumulate(reversed(scores), max))[::-1]
    return [
        left + right - 2 * here for left, right, here in zip(left_peaks, right_peaks, scores, strict=True)
    ]


def _sum(vectors: Iterable[Vector]) -> Vector:
    total: Vector = defaultdict(float)
    for vector in vectors:
        for word, weight in vector.items():
            total[word] += weight
    return total


def _cloze_questions(
    sentences: Sequence[Sentence],
    centrality: Sequence[float],
    key_terms: Sequence[KeyTerm],
    phrases: PhraseIndex,
) -> tuple[Cloze, ...]:
    """Up to eight fill-in-the-blank questions, one per key term, from the most central sentences."""
    unused = [term.term for term in key_terms]
    questions: list[Cloze] = []
    for index in _ranked(range(len(sentences)), centrality, phrases):
        if not unused or len(questions) == 8:
            break
        text = sentences[index].text
        for term in unused:
            match = _term_pattern(term).search(text)
            if match is not None:
                prompt = _term_pattern(term).sub(BLANK, text)
                questions.append(Cloze(sentences[index], match.group(0), prompt))
                unused.remove(term)
                break
    return tuple(sorted(questions, key=lambda q: q.source.index))


def _term_pattern(term: str) -> re.Pattern[str]:
    """The term as a whole-word match, any case, its words separated by spaces or hyphens."""
    return re.compile(rf"(?<!\w){_term_words(term)}(?!\w)", re.IGNORECASE)


def _term_words(term: str) -> str:
    return r"[\s\-]+".join(re.escape(word) for word in term.split())


# --- the note's structure ---------------------------------------------------------------------------


def study_note(note: OfflineNote) -> StudyNote:
    """The extracted note in the structure every engine writes (rendered by the one renderer).

    Every text is the speaker's words, escaped; an outline part starts where its first sentence does, and
    a chapter without captions says so (`NO_SPEECH`, at the chapter's start) instead of an empty heading.
    """
    outline = fold_outline(
        OutlineItem(
            int(section.points[0].start if section.points else section.start),
            _escape(section.title),
            tuple(Point(int(point.start), _escape(point.text)) for point in section.points)
            or (Point(int(section.start), NO_SPEECH),),
        )
        for section in note.outline
    )
    return StudyNote(
        summary=" ".join(_escape(sentence.text) for sentence in note.summary),
        key_concepts=tuple(
            Concept(_escape(t.term), f'"{_escape(t.definition.text)}"', int(t.definition.start))
            for t in note.key_terms
        ),
        outline=outline,
        review_questions=tuple(
            Question(_escape(q.prompt), _escape(q.answer), int(q.source.start)) for q in note.questions
        ),
    )


def _escape(text: str) -> str:
    """Spoken words shown as text: no accidental links, emphasis, tags, maths or HTML in Obsidian."""
    return _MARKDOWN_SPECIAL.sub(lambda match: "".join("\\" + char for char in match.group(0)), text)
