"""Text statistics for the offline engine: sentences from captions, content words, phrases, TF-IDF.

Captions are cut into sentences by their punctuation when they have some, else (automatic captions) by
pauses and length, always at caption boundaries. Non-speech markers (`[Music]`, `(applause)`, `♪`, `>>`)
end a sentence and are never part of one, so every sentence is a run of the transcript's own words.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from studybuddy.models import Segment

__all__ = [
    "ENGLISH_STOPWORDS",
    "PhraseIndex",
    "Sentence",
    "is_content_word",
    "split_sentences",
    "tfidf_vectors",
]

PAUSE_S = 1.5  # silence between captions that ends a sentence
_ASR_TARGET_WORDS = 25  # unpunctuated captions: end a sentence at the first caption boundary past this
_ASR_MIN_WORDS = 8  # ... or before a word that opens a new thought, once the sentence is this long
_NEW_THOUGHT = frozenset({"so", "now", "okay", "ok", "alright", "next", "finally", "first", "second"})
_MAX_WORDS = 60  # no sentence is longer, punctuation or not
_MAX_PHRASE_WORDS = 3
_COMMON_SHARE = 0.2  # without a stopword list, words in more sentences than this carry no topic
_COMMON_MIN_SENTENCES = 3  # ... and in at least this many: a short clip's words are not "common"

_NOISE = re.compile(
    r"\[[^\]]*\]|>>|[♪♫]+|\([^)]*\b(?:music|applause|laughter|laughs|laughing|inaudible|silence|noise|"
    r"cheering|crosstalk)\b[^)]*\)",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.?!…。？！][\"'”’)\]]*$")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_PHRASE_BREAK = re.compile(r"[,;:.?!…()\"“”\[\]—–]|\s-\s")

_ENGLISH_STOPWORD_LIST = """
    a about above actually after again against all almost also although always am among an and another
    any anyone anything anyway are aren't around as ask at away back basically be because been before
    being below best better between big both but by can can't cannot come comes coming could couldn't
    course did didn't different do does doesn't doing don't done down during each easy either else
    enough even ever every everyone everything example exactly few find first for from further get gets
    getting give given go goes going gonna good got gotta great had hadn't has hasn't have haven't
    having he he's hello help her here here's hers herself hey hi him himself his how however i i'd i'll
    i'm i've if important in instead into is isn't it it's its itself just keep kind know last least
    less let let's like little look looking looks lot lots made make makes making many may maybe me mean
    means might mine more most much must my myself need needs never new next nice no nor not nothing now
    number of off often oh ok okay on once one ones only or other others our ours ourselves out over own
    part people perhaps point pretty probably put quite rather really right said same say saying says
    second see seen she should shouldn't show simply since so some something sometimes somewhere sort
    start started still stuff such sure take takes talk talking tell than thank thanks that that's the
    their theirs them themselves then there there's these they they're thing things think thinking third
    this those though through thus time times to today together too took toward towards try trying two
    uh um under understand until up upon us use used uses using usually very via video videos want wanted
    wants was wasn't watch way ways we we'll we're we've well went were weren't what what's whatever when
    where whether which while who whole whom whose why will with within without won't work works would
    wouldn't yeah yes yet large small high low long short huge tiny bad real simple hard fast
    slow true false bit you you'd you'll you're you've your yours yourself yourselves"""
ENGLISH_STOPWORDS = frozenset(_ENGLISH_STOPWORD_LIST.split())

PhraseKey = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Sentence:
    index: int  # position in the transcript's sentence list
    start: float  # seconds, within the video
    text: str  # the transcript's words, single-spaced


class _SentenceBuilder:
    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.sentences: list[Sentence] = []
        self.tokens: list[str] = []
        self.start = 0.0

    def add(self, token: str, at: float) -> None:
        if not self.tokens:
            self.start = min(max(at, 0.0), self.limit)
        self.tokens.append(token)

    def end(self) -> None:
        text = " ".join(self.tokens)
        if _WORD.search(text):
            self.sentences.append(Sentence(len(self.sentences), self.start, text))
        self.tokens = []


def split_sentences(segments: Iterable[Segment], *, video_end: float) -> list[Sentence]:
    """The transcript's sentences in time order, each starting no later than `video_end`."""
    ordered = sorted((s for s in segments if math.isfinite(s.start)), key=lambda s: s.start)
    punctuated = _is_punctuated(ordered)
    builder = _SentenceBuilder(max(video_end, 0.0))
    previous_end: float | None = None
    for segment in ordered:
        duration = segment.duration if math.isfinite(segment.duration) and segment.duration > 0 else 0.0
        if previous_end is not None and segment.start - previous_end >= PAUSE_S:
            builder.end()
        previous_end = segment.start + duration
        pieces = [piece.split() for piece in _NOISE.split(segment.text)]
        total = sum(len(tokens) for tokens in pieces)
        position = 0
        for number, tokens in enumerate(pieces):
            if number:  # a non-speech marker stood here
                builder.end()
            for token in tokens:
                opens_thought = token.lower() in _NEW_THOUGHT and len(builder.tokens) >= _ASR_MIN_WORDS
                if not punctuated and opens_thought:
                    builder.end()
                builder.add(token, segment.start + duration * position / total)
                position += 1
                sentence_done = punctuated and len(builder.tokens) >= 3 and _SENTENCE_END.search(token)
                if sentence_done or len(builder.tokens) >= _MAX_WORDS:
                    builder.end()
        if not punctuated and len(builder.tokens) >= _ASR_TARGET_WORDS:
            builder.end()
    builder.end()
    return builder.sentences


def _is_punctuated(segments: Sequence[Segment]) -> bool:
    """Do the captions mark their sentence ends (manual captions), or not (most automatic ones)?"""
    tokens = [token for segment in segments for token in segment.text.split()]
    ends = sum(1 for token in tokens if _SENTENCE_END.search(token))
    return bool(tokens) and ends * 50 >= len(tokens)


def tfidf_vectors(words: Sequence[Sequence[str]]) -> list[dict[str, float]]:
    """One unit-length TF-IDF vector per sentence (smoothed IDF over the video's own sentences)."""
    document_frequency = Counter(word for sentence in words for word in set(sentence))
    count = len(words)
    vectors = []
    for sentence in words:
        weights = {
            word: tf * (math.log((1 + count) / (1 + document_frequency[word])) + 1)
            for word, tf in Counter(sentence).items()
        }
        norm = math.sqrt(sum(weight * weight for weight in weights.values()))
        vectors.append({word: weight / norm for word, weight in weights.items()})
    return vectors


class PhraseIndex:
    """Content words and 1-3 word phrases of every sentence, with counts and the forms they are spoken in.

    Words are lower case; a plural is counted with its singular when both are spoken ("neurons" with
    "neuron"). A phrase never crosses punctuation or a stopword.
    """

    def __init__(self, sentences: Sequence[Sentence], language_code: str) -> None:
        words_per_sentence = [_word_runs(sentence.text) for sentence in sentences]
        runs_per_sentence = _content_runs_of(
            words_per_sentence, _stopwords(language_code, words_per_sentence)
        )
        if not any(runs_per_sentence):  # only stopwords ("thank you so much"): its words are all it has
            runs_per_sentence = _content_runs_of(words_per_sentence, frozenset())
        vocabulary = {word for runs in runs_per_sentence for run in runs for word in run}
        self.sentence_count = len(sentences)
        self.words: list[tuple[str, ...]] = []
        self._count: Counter[PhraseKey] = Counter()
        self._where: dict[PhraseKey, list[int]] = defaultdict(list)
        self._surfaces: dict[PhraseKey, Counter[str]] = defaultdict(Counter)
        self._keys_of: list[set[PhraseKey]] = []
        for index, runs in enumerate(runs_per_sentence):
            canonical_runs = [[_singular(word, vocabulary) for word in run] for run in runs]
            self.words.append(tuple(word for run in canonical_runs for word in run))
            self._keys_of.append(set())
            for run, canonical in zip(runs, canonical_runs, strict=True):
                for first in range(len(run)):
                    for last in range(first + 1, min(first + _MAX_PHRASE_WORDS, len(run)) + 1):
                        key = tuple(canonical[first:last])
                        self._count[key] += 1
                        self._surfaces[key][" ".join(run[first:last])] += 1
                        self._keys_of[index].add(key)
                        if not self._where[key] or self._where[key][-1] != index:
                            self._where[key].append(index)

    @property
    def has_content(self) -> bool:
        return any(self.words)

    def surface(self, key: PhraseKey) -> str:
        """The form the phrase is spoken in most often (alphabetically first on ties)."""
        return min(self._surfaces[key].items(), key=lambda item: (-item[1], item[0]))[0]

    def sentences_with(self, key: PhraseKey) -> list[int]:
        return self._where[key]

    def score(self, key: PhraseKey) -> float:
        """Frequency, weighted up for phrases spread over many sentences and for longer phrases.

        Long words weigh a little more: the rarer a word is in the language, the longer it tends to be
        (chlorophyll, equilibrium), and without a corpus of other videos that is the best hint of rarity.
        """
        spread = len(self._where[key])
        letters = sum(len(word) for word in key)
        return self._count[key] * (1 + math.log(spread)) * (1.5 ** (len(key) - 1)) * math.sqrt(letters / 6)

    def top_phrases(self, count: int) -> list[tuple[PhraseKey, float]]:
        """The best `count` phrases spoken at least twice, no two sharing a word.

        A word is replaced by the phrase it is mostly spoken in ("descent" by "gradient descent").
        """
        repeated = [
            key for key, seen in self._count.items() if seen >= 2 and any(c.isalpha() for c in key[0])
        ]
        longer: dict[str, list[PhraseKey]] = defaultdict(list)
        for key in repeated:
            if len(key) > 1:
                for word in key:
                    longer[word].append(key)
        chosen: list[tuple[PhraseKey, float]] = []
        taken: set[str] = set()
        for candidate in sorted(repeated, key=lambda k: (-self.score(k), k)):
            if len(chosen) == count:
                break
            key = candidate
            if len(candidate) == 1:
                wider = [k for k in longer[candidate[0]] if self._count[k] * 5 >= self._count[candidate] * 2]
                key = min(wider, key=lambda k: (-self._count[k], len(k), k), default=candidate)
            if taken.isdisjoint(key):
                chosen.append((key, self.score(key)))
                taken.update(key)
        return chosen

    def title_for(self, indices: Iterable[int]) -> str | None:
        """A heading for a stretch of sentences: its two most distinctive phrases, or None."""
        local: Counter[PhraseKey] = Counter()
        for index in indices:
            local.update(key for key in self._keys_of[index] if self._count[key] >= 2)
        ranked = sorted(
            local,
            key=lambda k: (-local[k] * math.log(1 + self.sentence_count / len(self._where[k])) * len(k), k),
        )
        picked: list[PhraseKey] = []
        for key in ranked:
            if len(picked) == 2:
                break
            if all(set(key).isdisjoint(other) for other in picked):
                picked.append(key)
        if not picked:
            return None
        title = ", ".join(self.surface(key) for key in picked)
        return title[0].upper() + title[1:]


def _word_runs(text: str) -> list[list[str]]:
    """Lower-case words of a sentence, grouped into runs that punctuation does not interrupt."""
    return [_WORD.findall(part.lower()) for part in _PHRASE_BREAK.split(text)]


def _stopwords(language_code: str, runs_per_sentence: Sequence[Sequence[Sequence[str]]]) -> frozenset[str]:
    """English stopwords; in other languages, also the words found in a large share of sentences (and in
    several: in a clip of four sentences or fewer, every word is in a large share of them)."""
    if language_code.lower().startswith("en"):
        return ENGLISH_STOPWORDS
    sentence_count = max(len(runs_per_sentence), 1)
    frequency = Counter(word for runs in runs_per_sentence for word in {w for run in runs for w in run})
    common = {
        word
        for word, seen in frequency.items()
        if seen > _COMMON_SHARE * sentence_count and seen >= _COMMON_MIN_SENTENCES
    }
    return ENGLISH_STOPWORDS | common


def _content_runs_of(
    words_per_sentence: Sequence[Sequence[Sequence[str]]], stopwords: frozenset[str]
) -> list[list[list[str]]]:
    """Each sentence's runs of content words (none empty)."""
    return [[run for run in _content_runs(runs, stopwords) if run] for runs in words_per_sentence]


def _content_runs(runs: Iterable[Sequence[str]], stopwords: frozenset[str]) -> list[list[str]]:
    """Split runs further at every word that is not a content word."""
    content: list[list[str]] = []
    for run in runs:
        current: list[str] = []
        for word in run:
            if is_content_word(word, stopwords):
                current.append(word)
            elif current:
                content.append(current)
                current = []
        content.append(current)
    return content


def is_content_word(word: str, stopwords: frozenset[str] = ENGLISH_STOPWORDS) -> bool:
    """At least three characters, some of them letters, and not a stopword."""
    return len(word) >= 3 and word not in stopwords and any(char.isalpha() for char in word)


def _singular(word: str, vocabulary: set[str]) -> str:
    if word.endswith("s") and not word.endswith("ss") and word[:-1] in vocabulary:
        return word[:-1]
    return word
