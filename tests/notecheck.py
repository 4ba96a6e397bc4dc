"""Quality rules every note the test suite writes must keep: `check_note(path)`.

- The front matter is valid YAML (a mapping with the title and video id), whatever the title holds.
- Every `[[target]]` / `[[target|alias]]` wiki link names a file that exists in the notes tree.
- Every timestamp link (`https://youtu.be/ID?t=SECONDS`) is for this video and within its length.

A `.json` note (`--format json`) is checked the same way: its `meta` stands for the front matter and its
sections' Markdown for the body.
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
        meta, body = note["meta"], "\n".join(section["markdown"] for section in note["sections"])
    else:
        match = FRONT_MATTER.match(text)
        assert match, f"{path}: no front matter"
        meta, body = yaml.safe_load(match.group(1)), text[match.end() :]
    assert isinstance(meta, dict), f"{path}: front matter is not a mapping"
    assert isinstance(meta.get("title"), str) and meta["title"], f"{path}: no title"
    assert isinstance(meta.get("video_id"), str), f"{path}: no video id"
    _check_wiki_links(path, body, root or path.parent)
    _check_timestamps(path, body, meta)
    return meta


def _check_wiki_links(path: Path, body: str, root: Path) -> None:
    names = {file.stem for file in root.rglob("*") if file.is_file()}
    names |= {file.relative_to(root).with_suffix("").as_posix() for file in root.rglob("*") if file.is_file()}
    for target in WIKI_LINK.findall(body):
        assert target.strip() in names, f"{path}: [[{target}]] names no file under {root}"


def _check_timestamps(path: Path, body: str, meta: dict[str, Any]) -> None:
    duration = meta.get("duration")
    for video_id, second in TIMESTAMP.findall(body):
        assert video_id == meta["video_id"], f"{path}: timestamp link to another video {video_id}"
        if duration is not None:
            assert int(second) <= duration + 1, f"{path}: ?t={second} is past the video's end ({duration}s)"
