"""Where notes go on disk: safe file names from titles, unique paths per video, atomic writes, one lock.

A title is untrusted text: it may hold path separators (`../../etc/passwd`), Windows device names (`CON`),
control or bidi characters, or run to hundreds of bytes. `safe_filename` turns it into a name that is safe
on Linux, macOS and Windows; `OutputTree.note_path` makes the name unique per video and stable across
reruns, also between runs that share the folder (a name is claimed on disk, in `.study-buddy-claims/`,
until its file is written and recorded); `atomic_write_text` puts a file in place whole or not at all.

Every write of a note in an output tree holds the tree's one lock (`tree_lock`): a note written by a run or
by `notes regenerate` (`OutputTree.write`) and a related-notes block rewritten by the `Linker` (it reads the
note, then replaces it) exclude each other, between threads and between processes, so a backlink can never
put an old note back over a new one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import sys
import tempfile
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO

from studybuddy.errors import DiskFullError, OutputError
from studybuddy.models import VIDEO_ID_PATTERN
from studybuddy.owners import owner_is_gone, process_owner

log = logging.getLogger(__name__)

_FORBIDDEN_CHARS = frozenset('/\\:*?"<>|')
# Invisible characters that reorder or hide text: a name should look like what it is.
_BIDI_AND_FORMAT_CHARS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
)
_WINDOWS_RESERVED_STEMS = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{device}{digit}" for device in ("COM", "LPT") for digit in "123456789¹²³"}
)
_MIN_NAME_BYTES = 16  # room for the longest reserved stem, its "_" and some text
_FRONT_MATTER_BYTES = 8192
_FRONT_MATTER_VIDEO_ID = re.compile(r"""^video_id:\s*["']?([A-Za-z0-9_-]+)["']?\s*$""")
_TEMP_NAME_TRIES = 100
_MAX_NUMBERED_NAMES = 100
# The lock file of a tree: the name earlier versions locked for related-note links, so they exclude us too.
TREE_LOCK_FILENAME = ".study-buddy-links.lock"
CLAIMS_FOLDER = ".study-buddy-claims"  # one file per file name chosen and not yet written and recorded


def safe_filename(title: str, max_bytes: int = 150) -> str:
    """Turn `title` into a file name (no extension) safe on Linux, macOS and Windows.

    Returns "" when nothing usable is left (a title of only slashes, say): the caller falls back to the
    video id.
    """
    if max_bytes < _MIN_NAME_BYTES:
        raise ValueError(f"max_bytes must be at least {_MIN_NAME_BYTES}, got {max_bytes}")
    cleaned = "".join(_clean_char(char) for char in title)
    name = _strip_dots_and_spaces(" ".join(unicodedata.normalize("NFC", cleaned).split()))
    name = _strip_dots_and_spaces(_truncate_utf8(name, max_bytes))
    if _is_windows_reserved(name):
        stem, dot, rest = name.partition(".")
        name = _strip_dots_and_spaces(_truncate_utf8(f"{stem.rstrip(' ')}_{dot}{rest}", max_bytes))
    return name


def id_in_path(video_id: str) -> str:
    """`video_id`, to be part of a file or folder name, when it has the form of a YouTube video id; else
    `OutputError`. An id from a playlist listing or an archive row is never trusted to be one."""
    if VIDEO_ID_PATTERN.fullmatch(video_id) is None:
        raise OutputError(f"{video_id!r}: not a YouTube video id, so not part of a file name")
    return video_id


def _clean_char(char: str) -> str:
    """One character of a title as it may appear in a name: kept, dropped, or turned into a space."""
    if char in _BIDI_AND_FORMAT_CHARS or unicodedata.category(char) == "Cs":
        return ""
    if char in _FORBIDDEN_CHARS or unicodedata.category(char) == "Cc":
        return " "
    return char


def _strip_dots_and_spaces(name: str) -> str:
    """Leading dots hide a file, trailing dots and spaces vanish on Windows, "." and ".." are not names."""
    return name.strip(". ")


def _truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` that fits in `max_bytes` UTF-8 bytes, cut between characters."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def _is_windows_reserved(name: str) -> bool:
    """Windows reserves device names in any case, also with an extension ("con.txt") or trailing spaces."""
    stem = name.partition(".")[0].rstrip(" ")
    return stem.upper() in _WINDOWS_RESERVED_STEMS


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` so that readers see the old file or the new one, never a part.

    Creates the parent folder if needed. Raises `OutputError("<path>: <reason>")`; on failure no temp
    file is left behind.
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise OutputError(f"{path}: the text cannot be encoded as UTF-8 ({exc.reason})") from exc
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_path = _create_temp_beside(path)
    except OSError as exc:
        raise _output_error(path, exc) from exc
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        temp_path.replace(path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temp_path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _output_error(path, exc) from exc
        raise
    try:
        _fsync_directory(path.parent)
    except OSError as exc:
        raise _output_error(path, exc) from exc


def _create_temp_beside(path: Path) -> tuple[int, Path]:
    """A new hidden file `.<stem>-<random>.tmp` in the target's folder (same file system for os.replace).

    Made with `os.open` and mode 0o666 so the umask decides its permissions, as for any new file.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    prefix = _truncate_utf8(path.stem, 64)
    for _ in range(_TEMP_NAME_TRIES):
        temp_path = path.with_name(f".{prefix}-{secrets.token_hex(6)}.tmp")
        try:
            return os.open(temp_path, flags, 0o666), temp_path
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "no free temporary file name")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable. Windows cannot open folders, some file systems cannot sync them."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
        log.debug("cannot fsync folder %s: %s", directory, exc)
    finally:
        os.close(fd)


def _output_error(path: Path, exc: OSError) -> OutputError:
    message = f"{path}: {exc.strerror or exc}"
    return DiskFullError(message) if exc.errno in (errno.ENOSPC, errno.EDQUOT) else OutputError(message)


class TreeLock:
    """The one lock of an output tree that every note write holds: re-entrant for the thread that holds it,
    exclusive between threads (a lock) and between processes (an advisory `flock` on a file in the root).

    Use `tree_lock(root)`, which gives every user in a process the same lock for the same tree.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._threads = threading.RLock()
        self._depth = 0  # how often the holding thread has entered
        self._file: IO[str] | None = None
        self._unlockable = False  # the file system refused an flock

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._depth == 0:
                self._file = self._lock_file()
            self._depth += 1
        except BaseException:
            self._threads.release()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._file is not None:
                held, self._file = self._file, None
                with held:
                    _unlock(held)
        finally:
            self._threads.release()

    def _lock_file(self) -> IO[str] | None:
        if sys.platform == "win32":  # no flock: threads of this process are still excluded
            return None
        import fcntl

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            held = (self.root / TREE_LOCK_FILENAME).open("a")
        except OSError as exc:
            raise OutputError(f"{self.root}: cannot lock the notes ({exc.strerror or exc})") from exc
        try:
            fcntl.flock(held, fcntl.LOCK_EX)
        except OSError as exc:  # a file system without locks (some network or FUSE ones)
            held.close()
            if not self._unlockable:  # said once, not at every write
                self._unlockable = True
                log.warning(
                    "%s: cannot lock the notes (%s): runs sharing it are not kept apart", self.root, exc
                )
            return None
        except BaseException:
            held.close()
            raise
        return held


def _unlock(held: IO[str]) -> None:
    """Release the flock (explicitly: a forked child holding a copy of the descriptor must not keep it)."""
    import fcntl

    fcntl.flock(held, fcntl.LOCK_UN)


_TREE_LOCKS: dict[Path, TreeLock] = {}
_TREE_LOCKS_GUARD = threading.Lock()


def tree_lock(root: Path) -> TreeLock:
    """The lock of the output tree at `root`: one per tree in this process, whoever asks."""
    key = root.expanduser().resolve()
    with _TREE_LOCKS_GUARD:
        return _TREE_LOCKS.setdefault(key, TreeLock(key))


class OutputTree:
    """The output folder: hands out one note path per video, unique within the folder, between the threads
    of this process and between processes that share the folder.

    A path is reserved for its video from `note_path` until `release`: in memory for this process, and on
    disk (a claim file naming the video and the process) for the others. Once the file is written and
    recorded, the disk tells who owns it (a note's front matter names its video, the archive the rest), so
    memory does not grow with a long run. The choice is made under the tree's lock, so two processes never
    pick one name. A claim left by a process that died is stale for other videos, and still the claiming
    video's own on its rerun, so names stay stable.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.lock = tree_lock(self.root)
        self._owners: dict[str, str] = {}  # case-folded path -> video id that reserved it
        self._holder = process_owner("notes")

    def write(self, path: Path, text: str) -> None:
        """Write a note (or a file beside it) atomically, holding the tree's lock."""
        with self.lock:
            atomic_write_text(path, text)

    def ensure_writable(self) -> None:
        """Create the folder if needed and check a file can be made in it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".study-buddy-probe-", suffix=".tmp"):
                pass
        except OSError as exc:
            raise OutputError(f"{self.root}: output folder is not writable ({exc.strerror or exc})") from exc

    def note_path(
        self,
        video_id: str,
        title: str | None,
        subject: str | None,
        previous: Path | None,
        suffix: str = ".md",
    ) -> Path:
        """The path of `video_id`'s note. Thread-safe; the same video always gets the same answer.

        `previous` is the path the archive recorded for the video: reused while it stays inside the root.
        Otherwise the name comes from the title (or the video id), inside a sub-folder for `subject`, with
        ` [<video_id>]` added when another video already has that name.
        """
        id_in_path(video_id)
        with self.lock:
            reused = self._reusable_previous(video_id, previous, suffix)
            if reused is not None:
                return self._reserve(reused, video_id)
            base = safe_filename(title or "") or video_id
            subject_folder = safe_filename(subject or "")
            folder = self.root / subject_folder if subject_folder else self.root
            for name in _candidate_names(base, video_id):
                path = folder / f"{name}{suffix}"
                if self._available(path, video_id):
                    return self._reserve(path, video_id)
            raise OutputError(f"{video_id}: no free file name for {base!r} in {folder}")

    def inside(self, path: Path) -> Path | None:
        """`path` (relative to the root, or absolute) resolved, symbolic links followed, when it can be a
        note's: in the tree, not the root itself, in no hidden folder (the archive, saved transcripts);
        else None. A path recorded in the archive is never trusted to be one."""
        resolved = (self.root / path).resolve()
        if resolved == self.root or not resolved.is_relative_to(self.root):
            return None
        hidden = any(part.startswith(".") for part in resolved.relative_to(self.root).parts)
        return None if hidden else resolved

    def _reusable_previous(self, video_id: str, previous: Path | None, suffix: str) -> Path | None:
        if previous is None:
            return None
        resolved = self.inside(previous)
        if resolved is None:
            log.warning("%s: ignoring recorded note path outside %s", video_id, self.root)
            return None
        if not resolved.name.endswith(suffix) or self._owners.get(_key(resolved), video_id) != video_id:
            return None
        if self._claimant(resolved, video_id) not in (None, video_id):  # another run chose it meanwhile
            return None
        if _front_matter_video_id(resolved) not in (None, video_id):  # another video's note is there now
            return None
        return resolved

    def _available(self, path: Path, video_id: str) -> bool:
        """Whether `path` can be `video_id`'s: reserved for it, or for no one and free or its note on disk."""
        owner = self._owners.get(_key(path)) or self._claimant(path, video_id)
        if owner is not None:
            return owner == video_id
        return not path.exists() or _front_matter_video_id(path) == video_id

    def _reserve(self, path: Path, video_id: str) -> Path:
        self._owners[_key(path)] = video_id
        if self._read_claim(path) != (video_id, self._holder):
            claim = {"path": path.relative_to(self.root).as_posix(), "video_id": video_id, "by": self._holder}
            atomic_write_text(self._claim_file(path), json.dumps(claim) + "\n")
        return path

    def release(self, *paths: Path | None) -> None:
        """The files are written and recorded: their reservations (and claims) are no longer needed."""
        with self.lock:
            for path in filter(None, paths):
                owner = self._owners.pop(_key(path), None)
                claim = self._read_claim(path)
                if owner is not None and claim is not None and claim[0] == owner:
                    with contextlib.suppress(OSError):
                        self._claim_file(path).unlink()

    def _claim_file(self, path: Path) -> Path:
        """Where the claim on `path` is kept: named by a hash of its case-folded place in the tree."""
        relative = path.relative_to(self.root).as_posix().casefold()
        return self.root / CLAIMS_FOLDER / hashlib.sha256(relative.encode("utf-8")).hexdigest()[:32]

    def _read_claim(self, path: Path) -> tuple[str, str] | None:
        """(video id, claiming process) of the claim on `path`, or None."""
        try:
            claim = json.loads(self._claim_file(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.debug("%s: unreadable name claim (%s)", path, exc)
            return None
        if not isinstance(claim, dict) or not all(isinstance(claim.get(k), str) for k in ("video_id", "by")):
            return None
        return claim["video_id"], claim["by"]

    def _claimant(self, path: Path, video_id: str) -> str | None:
        """The video a claim on disk holds `path` for. A claim of another video whose process died is stale
        (None); the claiming video's own stays its own, so its rerun keeps the name."""
        claim = self._read_claim(path)
        if claim is None or (claim[0] != video_id and owner_is_gone(claim[1])):
            return None
        return claim[0]


def _candidate_names(base: str, video_id: str) -> Iterator[str]:
    """The title, then the title with the video id, then numbered variants for adversarial titles."""
    yield base
    yield f"{base} [{video_id}]"
    for number in range(2, _MAX_NUMBERED_NAMES + 2):
        yield f"{base} [{video_id}] ({number})"


def _key(path: Path) -> str:
    """Reservation key: case-insensitive, as on the default file systems of macOS and Windows."""
    return str(path).casefold()


def _front_matter_video_id(path: Path) -> str | None:
    """The `video_id` in the YAML front matter at the top of a note, or None."""
    try:
        with path.open("rb") as file:
            head = file.read(_FRONT_MATTER_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None
    lines = head.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for line in lines[1:]:
        if line.strip() in ("---", "..."):
            return None
        match = _FRONT_MATTER_VIDEO_ID.match(line)
        if match:
            return match.group(1)
    return None
