"""The exception hierarchy. Users of the library catch `StudyBuddyError`.

    StudyBuddyError                 anything study-buddy reports to a user (one line, no secrets)
    ├── InputError                  a URL, a file or an option value that cannot be used
    ├── ConfigError                 settings that do not fit together (missing key, bad CA bundle)
    ├── OutputError                 the output folder or a note file cannot be written
    │   └── DiskFullError           no space left: the run stops (every next video would fail too)
    ├── ArchiveError                the SQLite archive cannot be opened or written
    ├── TorError                    Tor cannot be reached, authenticated, launched or used
    ├── NotesError                  the note engine failed for one video
    │   └── NotesFatalError         the note engine cannot work at all (refused key, bad model)
    └── FetchError                  a transcript or its metadata could not be fetched
        ├── BlockedError            YouTube blocked this exit: cool it down, renew, retry
        ├── TransientError          network trouble or 5xx: back off and retry
        ├── PermanentError          no transcript will ever come: record it, do not retry
        │   └── GeoBlockedError     not in this exit's country: one more try through another exit
        └── BugError                a programming error reading YouTube's answer: report it, do not retry

Every `FetchError` carries `kind` (the `ErrorKind` stored in the archive) and `video_id`.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """How a failed video is treated: the value is what the archive stores."""

    BLOCKED = "blocked"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    NOTES = "notes"
    OUTPUT = "output"
    ERROR = "error"  # a bug (ours or a library's), not trouble of the network or of YouTube


# Failures of these kinds would only fail the same way again: retried when a user asks, never on their own.
RETRIED_ONLY_WHEN_ASKED = frozenset({ErrorKind.PERMANENT, ErrorKind.ERROR})


class StudyBuddyError(Exception):
    """Base class: its message is a single line fit to show a user."""


class InputError(StudyBuddyError):
    """A URL, a file or an option value that cannot be used."""


class ConfigError(StudyBuddyError):
    """Settings that do not fit together."""


class OutputError(StudyBuddyError):
    """The output folder or a note file cannot be written."""


class DiskFullError(OutputError):
    """No space left on the device (or quota exceeded): stop the run, do not fail every video."""


class ArchiveError(StudyBuddyError):
    """The archive cannot be opened or written."""


class TorError(StudyBuddyError):
    """Tor cannot be reached, authenticated, launched or used."""


class NotesError(StudyBuddyError):
    """The note engine failed for one video."""


class NotesFatalError(NotesError):
    """The note engine cannot work at all: stop the run before marking anything failed."""


class FetchError(StudyBuddyError):
    """A transcript or its metadata could not be fetched."""

    kind: ErrorKind = ErrorKind.TRANSIENT

    def __init__(self, video_id: str, reason: str) -> None:
        super().__init__(f"{video_id}: {reason}")
        self.video_id = video_id
        self.reason = reason


class BlockedError(FetchError):
    """YouTube refused this exit (bot check, 429, reCAPTCHA)."""

    kind = ErrorKind.BLOCKED


class TransientError(FetchError):
    """Connection trouble, a timeout or a 5xx: worth retrying after a pause."""

    kind = ErrorKind.TRANSIENT


class PermanentError(FetchError):
    """The video has no transcript we can get (disabled, unavailable, age restricted...)."""

    kind = ErrorKind.PERMANENT


class GeoBlockedError(PermanentError):
    """The uploader has not made the video available in the country of this exit: an exit elsewhere may
    play it, so it is tried once more through another one before it is recorded as permanent."""


class BugError(FetchError):
    """A `TypeError`, `KeyError`... while reading YouTube's answer: the code (ours or a library's) no longer
    fits what YouTube sends. Retrying would fail the same way, and a flaky network is not the cause."""

    kind = ErrorKind.ERROR


def error_kind(exc: StudyBuddyError) -> ErrorKind:
    """The kind a video that failed with `exc` is recorded with."""
    if isinstance(exc, FetchError):
        return exc.kind
    if isinstance(exc, NotesError):
        return ErrorKind.NOTES
    return ErrorKind.OUTPUT
