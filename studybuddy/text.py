"""Plain text as every layer meets it: one-line messages, and the lines of a list file a user gives.

A list file (`--file` URLs, `--proxy-file` proxies) has one entry per line, `#` comments and blank lines;
`file_lines` reads it line by line, so one undecodable line is reported without losing the others. An entry
that cannot be used becomes a `BadInput`, which names its file and line.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from studybuddy.errors import InputError

__all__ = ["DISPLAY_CHARS", "BadInput", "FileLine", "file_lines", "one_line"]

log = logging.getLogger(__name__)

DISPLAY_CHARS = 80  # an input shown in a message is cut to this many characters
_COMMENT_START = re.compile(rb"(?<!\S)#")


def one_line(text: str, *, limit: int | None = None) -> str:
    """`text` with every run of whitespace (newlines too) as one space; cut to `limit` characters with `…`."""
    line = " ".join(text.split())
    return line if limit is None or len(line) <= limit else f"{line[: limit - 1]}…"


@dataclass(frozen=True)
class BadInput:
    """One argument or file line that names no video we can process."""

    source: str  # "urls.txt:7" or "argument 2"
    text: str  # shortened for display
    reason: str

    @property
    def message(self) -> str:
        """One line for the user: `urls.txt:7: not a YouTube video URL: 'http://x'`."""
        return f"{self.source}: {self.reason}: {self.text!r}"


class FileLine(NamedTuple):
    """A non-blank line of a list file without its comment: `text` is None when it is not UTF-8."""

    source: str  # "urls.txt:7"
    text: str | None
    raw: str  # for display (undecodable bytes replaced)


def file_lines(path: Path) -> Iterator[FileLine]:
    """The non-blank, non-comment lines of a list file (`#` comments, a UTF-8 BOM), each decoded on its own.

    Raises `InputError` naming the file when it cannot be read.
    """
    data = _read_bytes(path).removeprefix(codecs.BOM_UTF8)
    lines = data.splitlines()
    for number, line in enumerate(lines, start=1):
        comment = _COMMENT_START.search(line)
        content = (line[: comment.start()] if comment else line).strip()
        if not content:
            continue
        try:
            text: str | None = content.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        yield FileLine(f"{path}:{number}", text, content[: DISPLAY_CHARS * 4].decode("utf-8", "replace"))
    log.debug("read %d lines from %s", len(lines), path)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        problem = "no such file"
    except IsADirectoryError:
        problem = "is a directory, not a file"
    except PermissionError:
        problem = "permission denied"
    except OSError as error:
        problem = f"cannot be read ({error.strerror or error})"
    raise InputError(f"{path}: {problem}")
