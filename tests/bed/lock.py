"""One test bed per machine at a time: it binds fixed loopback addresses (port 443 on 127.0.0.1N)."""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = Path(tempfile.gettempdir()) / "study-buddy-bed.lock"


@contextmanager
def bed_lock() -> Iterator[None]:
    """Hold the machine's test-bed lock (waits while another test run, demo or bench has it)."""
    with LOCK_FILE.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
