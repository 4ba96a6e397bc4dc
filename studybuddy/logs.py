"""Logging for the CLI: one handler on stderr, and a filter that keeps secrets out of every record.

The library only logs (`logging.getLogger(__name__)`); configuring is the CLI's job, done here.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable
from typing import TextIO

# user:password@ in any URL (SOCKS credentials of workers, proxies given by users).
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)
_KEY_LIKE = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}")
REDACTED = "***"


class SecretFilter(logging.Filter):
    """Replaces known secrets, API-key-like strings and URL credentials in messages and tracebacks."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if s and len(s) >= 4)

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        text = _URL_CREDENTIALS.sub(rf"\g<scheme>{REDACTED}@", text)
        return _KEY_LIKE.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            formatter = logging.Formatter()
            record.exc_text = self.redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        return True


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is *now*: the live progress view redirects it while it runs."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        return None


# Libraries whose warnings study-buddy turns into its own one-line messages: psycopg's pool warns at every
# failed reconnection while the archive's server is away (the archive's error says why, once).
_TOLD_BY_US = ("psycopg.pool",)


class _Levels(logging.Filter):
    """study-buddy's records at the chosen level; libraries' only from WARNING (INFO with --debug).

    A filter on the handler, not logger levels: libraries (stem) set their own loggers' levels on import.
    """

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level
        self.library_level = logging.INFO if level <= logging.DEBUG else max(level, logging.WARNING)

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == "studybuddy" or record.name.startswith("studybuddy.")
        if not own and record.name.startswith(_TOLD_BY_US) and self.level > logging.DEBUG:
            return False
        return record.levelno >= (self.level if own else self.library_level)


def configure(level: int, secret_filter: SecretFilter, handler: logging.Handler | None = None) -> None:
    """Send every log record through one redacting handler on stderr, filtered by `level`."""
    handler = handler or StderrHandler()
    clock = "%(asctime)s.%(msecs)03d" if level <= logging.DEBUG else "%(asctime)s"  # --debug: milliseconds
    handler.setFormatter(logging.Formatter(f"{clock} %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(_Levels(level))
    handler.addFilter(secret_filter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))
    logging.getLogger("studybuddy").setLevel(level)
