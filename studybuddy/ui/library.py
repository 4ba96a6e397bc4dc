"""The output tree as pages: notes by subject, one note with its front matter, a moment of a video.

Paths from the browser are checked to stay inside the output folder. Wiki-link targets resolve as
Obsidian resolves them: `folder/Name` by its path, `Name` by the note of that name (in the root first).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml
from markdown_it import MarkdownIt

from studybuddy.store.render import format_clock
from studybuddy.ui.markdown import make_renderer, render
from studybuddy.youtube.inputs import parse_video_id

TRANSCRIPT_SUFFIX = ".transcript.md"
ROOT_SUBJECT = "(no subject)"
_FRONT_MATTER = re.compile(r"\A---\n(?P<yaml>.*?)\n---\n", re.DOTALL)
_CAPTION = re.compile(r"^(?:[-*] )?\[(?P<clock>[\d:]+)\]\((?P<url>[^)]+)\)\s*(?P<text>.*)$", re.MULTILINE)
_EXTERNAL = ("http://", "https://", "mailto:")


@dataclass(frozen=True, slots=True)
class NoteEntry:
    path: str  # relative to the output folder, with forward slashes
    title: str
    subject: str


@dataclass(frozen=True, slots=True)
class RenderedNote:
    path: str
    title: str
    front: dict[str, object]
    html: str


@dataclass(frozen=True, slots=True)
class Caption:
    seconds: int
    clock: str
    text: str


def moment_url(video_id: str, seconds: int) -> str:
    """The UI's page for one second of a video."""
    return f"/video/{quote(video_id)}?t={seconds}"


def youtube_moment(url: str) -> tuple[str, int] | None:
    """(video id, second) of a YouTube link that opens a video at a second, else None."""
    video_id = parse_video_id(url) if url.startswith(_EXTERNAL[:2]) else None
    if video_id is None:
        return None
    values = parse_qs(urlsplit(url).query).get("t", ["0"])
    digits = values[0].rstrip("s")
    return (video_id, int(digits)) if digits.isdigit() else None


class Library:
    """The notes of one output folder."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self._md: MarkdownIt = make_renderer()

    def notes(self) -> list[NoteEntry]:
        """Every note (not transcripts, not hidden folders), by subject then title."""
        entries = []
        for path in self._note_files():
            relative = path.relative_to(self.root)
            subject = relative.parts[0] if len(relative.parts) > 1 else ROOT_SUBJECT
            title = _title(path)
            entries.append(NoteEntry(relative.as_posix(), title, subject))
        return sorted(entries, key=lambda e: (e.subject != ROOT_SUBJECT, e.subject.lower(), e.title.lower()))

    def by_subject(self) -> dict[str, list[NoteEntry]]:
        groups: dict[str, list[NoteEntry]] = defaultdict(list)
        for entry in self.notes():
            groups[entry.subject].append(entry)
        return dict(groups)

    def file(self, relative: str) -> Path | None:
        """The Markdown file at `relative`, if it is one inside the output folder."""
        candidate = (self.root / unquote(relative)).resolve()
        if not candidate.is_relative_to(self.root) or candidate.suffix != ".md" or not candidate.is_file():
            return None
        return candidate

    def render(self, relative: str) -> RenderedNote | None:
        path = self.file(relative)
        if path is None:
            return None
        text = path.read_text(encoding="utf-8", errors="replace")
        front, body = split_front_matter(text)
        folder = PurePosixPath(path.relative_to(self.root).as_posix()).parent
        names = self._names()

        def resolve(target: str) -> str | None:
            found = names.get(target.split("#", maxsplit=1)[0].strip().lower())
            return "/notes/" + quote(found + ".md") if found is not None else None

        html = render(self._md, body, resolve=resolve, link=lambda href: self._link(href, folder))
        title = str(front.get("title") or _title(path))
        return RenderedNote(path.relative_to(self.root).as_posix(), title, front, html)

    def captions(self, transcript: Path | None) -> list[Caption]:
        """The timestamped lines of a saved Markdown transcript (none if missing or in another format)."""
        if transcript is None or not transcript.is_file() or transcript.suffix != ".md":
            return []
        captions = []
        for match in _CAPTION.finditer(transcript.read_text(encoding="utf-8", errors="replace")):
            moment = youtube_moment(match["url"])
            if moment is not None:
                captions.append(Caption(moment[1], format_clock(moment[1]), match["text"]))
        return captions

    def _note_files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [
            path
            for path in self.root.rglob("*.md")
            if not path.name.endswith(TRANSCRIPT_SUFFIX)
            and not any(part.startswith(".") for part in path.relative_to(self.root).parts)
        ]

    def _names(self) -> dict[str, str]:
        """Wiki-link targets (lower case) -> note path without `.md`."""
        by_name: dict[str, str] = {}
        for path in sorted(
            self._note_files(), key=lambda p: len(p.relative_to(self.root).parts), reverse=True
        ):
            relative = path.relative_to(self.root).with_suffix("").as_posix()
            by_name[relative.lower()] = relative
            by_name[path.stem.lower()] = relative  # shallower notes are set last: they win
        return by_name

    def _link(self, href: str, folder: PurePosixPath) -> str:
        moment = youtube_moment(href)
        if moment is not None:
            return moment_url(*moment)
        if href.startswith(_EXTERNAL) or href.startswith("#") or not href:
            return href
        target = (folder / unquote(href.split("#", maxsplit=1)[0])).as_posix()
        return "/notes/" + quote(target)


def split_front_matter(text: str) -> tuple[dict[str, object], str]:
    """The YAML front matter (empty if none or unreadable) and the rest of the note."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        return {}, text
    try:
        data = yaml.safe_load(match["yaml"])
    except yaml.YAMLError:
        return {}, text
    return (data if isinstance(data, dict) else {}), text[match.end() :]


def _title(path: Path) -> str:
    with path.open(encoding="utf-8", errors="replace") as handle:
        head = handle.read(4096)
    front, _ = split_front_matter(head)
    return str(front.get("title") or path.stem)
