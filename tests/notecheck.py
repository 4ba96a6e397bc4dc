"""Quality rules every note the test suite writes must keep: `check_note(path)`.

- The front matter is valid YAML (a mapping with the title and video id), whatever the title holds.
- Every `[[target]]` / `[[target|alias]]` wiki link names a file that exists in the notes tree.
- Every timestamp link (`https://youtu.be/ID?t=SECONDS`) is for this video and within its length, and,
  when the video's transcript is saved beside it (`.transcripts/ID.json`), at the start of a caption or
  of a chapter.

A `.json` note (`--format json`) is checked the same way: its `meta` stands for the front matter, the texts
of its `note` for the body and every `second` in it for a timestamp link.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

FRONT_MATTER = re.compile(r"\A---\n(.*?)^---\n", re.DOTALL | re.MULTILINE)
WIKI_LINK = re.compile(r"\[\[([^\]|#]*)(?:#[^\]|]*)?(?:\|[^\]]*)?\]\]")
TIMESTAMP = re.compile(r"https://youtu\.be/([\w-]+)\?t=(\d+)")


def front_matter(text: str) -> dict[str, Any]:
    """What a front-matter reader sees: the YAML between the first two `---` lines (a mapping)."""
    match = FRONT_MATTER.match(text)
    assert match, f"no front matter in {text[:80]!r}"
    loaded = yaml.safe_load(match.group(1))
    assert isinstance(loaded, dict), "the front matter is not a mapping"
    return loaded


def check_note(path: Path, root: Path | None = None) -> dict[str, Any]:
    """Assert the rules above for the note at `path` (links resolve within `root`, default its folder).

    Returns the front matter (or the JSON note's `meta`) for further checks.
    """
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        note = json.loads(text)
        meta, body = note["meta"], "\n".join(_texts(note["note"]))
        links = [(meta["video_id"], second) for second in _seconds(note["note"])]
    else:
        match = FRONT_MATTER.match(text)
        assert match, f"{path}: no front matter"
        meta, body = yaml.safe_load(match.group(1)), text[match.end() :]
        links = [(video_id, int(second)) for video_id, second in TIMESTAMP.findall(body)]
    assert isinstance(meta, dict), f"{path}: front matter is not a mapping"
    assert isinstance(meta.get("title"), str) and meta["title"], f"{path}: no title"
    assert isinstance(meta.get("video_id"), str), f"{path}: no video id"
    _check_wiki_links(path, body, root or path.parent)
    _check_timestamps(path, links, meta, root or path.parent)
    return meta


def _texts(value: Any) -> list[str]:
    """Every text in a JSON note's structure."""
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [text for item in items for text in _texts(item)]


def _seconds(value: Any) -> list[int]:
    """Every `second` in a JSON note's structure."""
    if isinstance(value, dict):
        own = [int(value["second"])] if isinstance(value.get("second"), int) else []
        return own + [second for item in value.values() for second in _seconds(item)]
    if isinstance(value, list):
        return [second for item in value for second in _seconds(item)]
    return []


def _check_wiki_links(path: Path, body: str, root: Path) -> None:
    names = {file.stem for file in root.rglob("*") if file.is_file()}
    names |= {file.relative_to(root).with_suffix("").as_posix() for file in root.rglob("*") if file.is_file()}
    for target in WIKI_LINK.findall(body):
        assert target.strip() in names, f"{path}: [[{target}]] names no file under {root}"


def _check_timestamps(path: Path, links: list[tuple[str, int]], meta: dict[str, Any], root: Path) -> None:
    duration = meta.get("duration")
    saved = root / ".transcripts" / f"{meta['video_id']}.json"
    starts = None
    if saved.is_file():
        video = json.loads(saved.read_text())
        starts = {int(start) for start, _duration, _text in video["transcript"]["segments"]}
        starts |= {int(chapter["start"]) for chapter in video["meta"]["chapters"]}
    for video_id, second in links:
        assert video_id == meta["video_id"], f"{path}: timestamp link to another video {video_id}"
        if duration is not None:
            assert second <= duration + 1, f"{path}: ?t={second} is past the video's end ({duration}s)"
        if starts is not None:
            assert second in starts, f"{path}: ?t={second} is at no caption's or chapter's start"
