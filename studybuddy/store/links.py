"""A linked knowledge base: every new note links to the notes most like it, and they link back.

Similarity is TF-IDF cosine over the words of each note (pure Python, sparse; no model to download). The
index is built once per run from the notes on disk (files whose front matter has a `video_id`), then each
new note is added as it is written, so a large tree is read once, not once per video.

Links live in a marked block at the end of a note, rewritten in place; text outside it is never touched:

    <!-- study-buddy:related -->
    ## Related notes

    - [[Note name|Readable title]]
    <!-- /study-buddy:related -->

A name shared by notes in two folders is written `[[folder/Note name|...]]` so the link stays unambiguous.
The `Linker` serialises index updates and block rewrites between threads and between processes with the
tree's one note lock (`output.tree_lock`, which every note write holds too); every block is re-read from
disk right before it is rewritten.
"""

from __future__ import annotations

import heapq
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from studybuddy.errors import OutputError
from studybuddy.store.output import atomic_write_text, tree_lock

log = logging.getLogger(__name__)

__all__ = [
    "RELATED_END",
    "RELATED_START",
    "Link",
    "Linker",
    "MalformedBlockError",
    "TfIdfIndex",
    "block_links",
    "replace_related_block",
    "tokenize",
]

RELATED_START = "<!-- study-buddy:related -->"
RELATED_END = "<!-- /study-buddy:related -->"
RELATED_HEADING = "## Related notes"
DEFAULT_TOP_K = 5
DEFAULT_THRESHOLD = 0.1
DEFAULT_MAX_LINKS = 20  # a note linked from many others keeps only its closest backlinks
SIMILAR_LIMIT = 200  # enough to score every subject folder near a note by its best notes
_NORM_STALENESS = 0.1  # recompute cached document norms once the tree grew by 10 %

_URL = re.compile(r"\w+://\S+")
_WORD = re.compile(r"[^\W\d_]{3,}")
_WIKI_LINK = re.compile(r"\[\[(.+?)\|([^\]|]*)\]\]")
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STOP_WORDS_TEXT = """
    about above after again against all also and any are because been before being below between both
    but can could did does doing down during each few for from further had has have having her here hers
    herself him himself his how into its itself just let more most much must not now off once only other
    our ours out over own same she should some such than that the their theirs them then there these
    they this those through too under until very was way were what when where which while who whom why
    will with would you your yours yourself yourselves one two use used using like get got make made
    thing things really going know see well want need first next video watch youtube captions automatic
    english notes note
"""
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


def tokenize(text: str) -> list[str]:
    """The content words of `text`: lower case, 3+ letters, no stop words or URLs, plural `s` removed."""
    words = _WORD.findall(_URL.sub(" ", text).lower())
    return [_stem(word) for word in words if word not in _STOP_WORDS]


def _stem(word: str) -> str:
    if len(word) > 5 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


class TfIdfIndex:
    """Sparse TF-IDF vectors (sublinear tf, idf that falls to ~0 for words in every document).

    Not thread-safe: the `Linker` guards it. Document norms depend on the idf of the whole collection;
    they are cached and recomputed when the collection has grown by `_NORM_STALENESS` since.
    """

    def __init__(self) -> None:
        self._weights: dict[Path, dict[str, float]] = {}  # key -> term -> 1 + log(tf)
        self._postings: dict[str, set[Path]] = {}
        self._norms: dict[Path, float] = {}
        self._norms_size = 0

    def __len__(self) -> int:
        return len(self._weights)

    def __contains__(self, key: object) -> bool:
        return key in self._weights

    def add(self, key: Path, tokens: Iterable[str]) -> None:
        """Index a document (replacing what `key` held before)."""
        self.remove(key)
        weights = {term: 1.0 + math.log(count) for term, count in Counter(tokens).items()}
        self._weights[key] = weights
        for term in weights:
            self._postings.setdefault(term, set()).add(key)
        self._norms[key] = self._norm(weights)

    def remove(self, key: Path) -> None:
        for term in self._weights.pop(key, {}):
            keys = self._postings[term]
            keys.discard(key)
            if not keys:
                del self._postings[term]
        self._norms.pop(key, None)

    def similar(
        self,
        tokens: Iterable[str],
        *,
        exclude: Iterable[Path] = (),
        threshold: float = 0.0,
        limit: int = DEFAULT_MAX_LINKS,
    ) -> list[tuple[Path, float]]:
        """The `limit` documents most similar to `tokens` (cosine above `threshold`), most similar first."""
        self._refresh_norms()
        query = {term: (1.0 + math.log(count)) * self._idf(term) for term, count in Counter(tokens).items()}
        query_norm = math.sqrt(sum(weight * weight for weight in query.values()))
        if query_norm == 0:
            return []
        dots: dict[Path, float] = {}
        for term, query_weight in query.items():
            if query_weight == 0:
                continue
            idf = self._idf(term)
            for key in self._postings.get(term, ()):
                dots[key] = dots.get(key, 0.0) + query_weight * idf * self._weights[key][term]
        for key in exclude:
            dots.pop(key, None)
        scores = [
            (key, dot / (query_norm * self._norms[key])) for key, dot in dots.items() if self._norms[key]
        ]
        return heapq.nsmallest(
            limit,
            ((key, score) for key, score in scores if score > threshold),
            key=lambda item: (-round(item[1], 9), str(item[0])),  # ties by name, whatever the float noise
        )

    def cosine(self, first: Path, second: Path) -> float:
        """The similarity of two indexed documents (0 when either is unknown)."""
        self._refresh_norms()
        a, b = self._weights.get(first), self._weights.get(second)
        if not a or not b or not self._norms[first] or not self._norms[second]:
            return 0.0
        if len(b) < len(a):
            a, b = b, a
        dot = sum(weight * b[term] * self._idf(term) ** 2 for term, weight in a.items() if term in b)
        return dot / (self._norms[first] * self._norms[second])

    def _idf(self, term: str) -> float:
        documents = len(self._weights)
        return max(math.log((documents + 1) / (len(self._postings.get(term, ())) + 0.5)), 0.0)

    def _norm(self, weights: dict[str, float]) -> float:
        return math.sqrt(sum((weight * self._idf(term)) ** 2 for term, weight in weights.items()))

    def _refresh_norms(self) -> None:
        size = len(self._weights)
        if abs(size - self._norms_size) > self._norms_size * _NORM_STALENESS:
            self._norms = {key: self._norm(weights) for key, weights in self._weights.items()}
            self._norms_size = size


@dataclass(frozen=True, slots=True)
class Link:
    """`[[target|alias]]`: `target` is a note's name (or `folder/name`), `alias` what a reader sees."""

    target: str
    alias: str

    def render(self) -> str:
        return f"[[{self.target}|{self.alias}]]"


class MalformedBlockError(ValueError):
    """A note's related-notes markers are unbalanced (a user edited them): the note is left alone."""


def _block_span(text: str) -> tuple[int, int] | None:
    """Where the marked block starts and ends (after its end marker), or None when there is none."""
    start = text.find(RELATED_START)
    if start == -1:
        if RELATED_END in text:
            raise MalformedBlockError("end marker without a start marker")
        return None
    end = text.find(RELATED_END, start)
    if end == -1 or text.find(RELATED_START, start + 1) != -1:
        raise MalformedBlockError("unbalanced related-notes markers")
    return start, end + len(RELATED_END)


def block_links(text: str) -> list[Link]:
    """The links inside a note's marked block, in order."""
    span = _block_span(text)
    if span is None:
        return []
    return [Link(target, alias) for target, alias in _WIKI_LINK.findall(text[span[0] : span[1]])]


def without_block(text: str) -> str:
    """The note without its marked block (what the note itself says)."""
    span = _block_span(text)
    return text if span is None else text[: span[0]] + text[span[1] :]


def _own_text(text: str) -> str:
    """What to index of a note: all but its marked block (all of it when the markers are broken)."""
    try:
        return without_block(text)
    except MalformedBlockError:
        return text


def replace_related_block(text: str, links: Iterable[Link]) -> str:
    """`text` with its marked block holding `links` (added at the end if missing, removed if no links)."""
    items = [f"- {link.render()}" for link in links]
    span = _block_span(text)
    before, after = (text, "") if span is None else (text[: span[0]], text[span[1] :])
    before = before.rstrip()
    after = after.lstrip("\n")
    if items:
        block = "\n".join([RELATED_START, RELATED_HEADING, "", *items, RELATED_END])
        return f"{before}\n\n{block}\n" + (f"\n{after}" if after.strip() else "")
    if span is None:
        return text
    return f"{before}\n" + (f"\n{after}" if after.strip() else "")


@dataclass(frozen=True, slots=True)
class IndexedNote:
    path: Path  # absolute
    video_id: str
    title: str
    folder: str | None  # the top-level sub-folder (subject) of the tree holding the note


def read_note(path: Path) -> tuple[dict[str, Any], str] | None:
    """(front matter, text) of a study-buddy note, or None for any other file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("---\n"):
        return None
    end = text.find("\n---\n", 3)
    if end == -1:
        return None
    try:
        front = yaml.load(text[4:end], Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        log.debug("%s: front matter is not valid YAML; not linked", path)
        return None
    if not isinstance(front, dict) or not isinstance(front.get("video_id"), str):
        return None
    return front, text


def _alias(title: str) -> str:
    return " ".join(title.replace("|", "-").replace("[", "(").replace("]", ")").split())


class Linker:
    """Finds related notes in one output tree and writes the links both ways. Shared by all workers.

    With `write_links=False` it only keeps the index (for `--auto-subject` without `--links`).
    """

    def __init__(
        self,
        root: Path,
        *,
        top_k: int = DEFAULT_TOP_K,
        threshold: float = DEFAULT_THRESHOLD,
        max_links: int = DEFAULT_MAX_LINKS,
        write_links: bool = True,
    ) -> None:
        self.root = root.expanduser().resolve()
        self.top_k = top_k
        self.threshold = threshold
        self.max_links = max(max_links, top_k)
        self.write_links = write_links
        self._index = TfIdfIndex()
        self._notes: dict[Path, IndexedNote] = {}
        self._by_stem: dict[str, set[Path]] = {}
        self._by_video: dict[str, Path] = {}
        self._loaded = False
        self._lock = threading.RLock()

    def link(self, note_path: Path) -> list[Path]:
        """Index the note just written at `note_path`, write its related notes and their backlinks.

        Returns the related notes' paths. Raises `OutputError` when the note itself cannot be rewritten;
        a related note that cannot be updated is only logged.
        """
        path = note_path.resolve()
        with tree_lock(self.root), self._lock:  # the tree's lock first, as every note write takes it
            self._load()
            note = read_note(path)
            if note is None:
                log.warning("%s: not a study-buddy note; not linked", path)
                return []
            tokens = self._add(path, *note)
            found = self._index.similar(tokens, exclude=[path], threshold=self.threshold, limit=self.top_k)
            related = [key for key, _ in found]
            if self.write_links:
                self._rewrite_block(path, related, strict=True)
                for other in related:
                    self._add_backlink(other, path)
            return related

    def link_written(self, note_path: Path) -> None:
        """`link` a note that is written and done: a failure to link it is logged, never raised (the note
        stands without its related notes; failing its video would fetch it and pay for it again)."""
        try:
            self.link(note_path)
        except (OutputError, OSError) as exc:
            log.warning(
                "%s: the note is written, but its related notes could not be linked (%s)", note_path, exc
            )

    def similar(self, text: str) -> list[tuple[IndexedNote, float]]:
        """The indexed notes most similar to `text` (at most `SIMILAR_LIMIT`), most similar first."""
        with self._lock:
            self._load()
            found = self._index.similar(tokenize(text), limit=SIMILAR_LIMIT)
            return [(self._notes[key], score) for key, score in found]

    # -- the index -----------------------------------------------------------------------------------

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for path in self._note_files():
            found = read_note(path)
            if found is not None:
                self._add(path, *found)
        log.info("%s: %d notes indexed for links", self.root, len(self._notes))

    def _note_files(self) -> Iterator[Path]:
        for path in self.root.rglob("*.md"):
            relative = path.relative_to(self.root)
            if not any(part.startswith(".") for part in relative.parts) and path.is_file():
                yield path.resolve()

    def _add(self, path: Path, front: dict[str, Any], text: str) -> list[str]:
        """Index a note (replacing an older note of the same video); returns its tokens."""
        video_id = str(front["video_id"])
        moved = self._by_video.get(video_id)
        if moved is not None and moved != path:
            self._forget(moved)  # the video's note moved
        self._forget(path)
        self._by_video[video_id] = path
        relative = path.relative_to(self.root)
        folder = relative.parts[0] if len(relative.parts) > 1 else None
        title = str(front.get("title") or path.stem)
        self._notes[path] = IndexedNote(path, video_id, title, folder)
        self._by_stem.setdefault(path.stem.casefold(), set()).add(path)
        tokens = tokenize(_own_text(text[text.find("\n---\n") + 5 :]))
        self._index.add(path, tokens)
        return tokens

    def _forget(self, path: Path) -> None:
        note = self._notes.pop(path, None)
        if note is not None:
            self._by_stem[path.stem.casefold()].discard(path)
            self._by_video.pop(note.video_id, None)
            self._index.remove(path)

    # -- the links -----------------------------------------------------------------------------------

    def _target(self, path: Path) -> str:
        """The shortest name Obsidian resolves to `path`: its stem, or `folder/stem` when shared."""
        if len(self._by_stem.get(path.stem.casefold(), ())) <= 1:
            return path.stem
        return path.relative_to(self.root).with_suffix("").as_posix()

    def _resolve(self, target: str) -> Path | None:
        if "/" in target:
            path = (self.root / f"{target}.md").resolve()
            return path if path in self._notes else None
        paths = self._by_stem.get(target.casefold(), set())
        return next(iter(paths)) if len(paths) == 1 else None

    def _link_to(self, path: Path) -> Link:
        return Link(self._target(path), _alias(self._notes[path].title))

    def _add_backlink(self, path: Path, new: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")  # re-read: another process may have edited it
            current = [self._resolve(link.target) for link in block_links(text)]
        except (OSError, UnicodeDecodeError, MalformedBlockError) as exc:
            log.warning("%s: cannot add a backlink (%s)", path, exc)
            return
        keys = list(dict.fromkeys(key for key in [*current, new] if key is not None and key != path))
        keys.sort(key=lambda key: (-round(self._index.cosine(path, key), 9), key))
        self._rewrite_block(path, keys[: self.max_links], strict=False, text=text)

    def _rewrite_block(self, path: Path, keys: list[Path], *, strict: bool, text: str | None = None) -> None:
        try:
            current = path.read_text(encoding="utf-8") if text is None else text
            updated = replace_related_block(current, [self._link_to(key) for key in keys])
            if updated != current:
                atomic_write_text(path, updated)
        except (OSError, UnicodeDecodeError, MalformedBlockError, OutputError) as exc:
            if strict:
                raise OutputError(f"{path}: cannot write related notes ({exc})") from exc
            log.warning("%s: cannot update related notes (%s)", path, exc)
