"""Who holds something shared between processes (a claim on a video, an exclusion in a shared Tor), and
whether that holder is still alive.

An owner is `host:pid:run`, so a user can tell which run holds what, and a process on this host that no
longer runs (a crash, `kill -9`) can be recognised at once instead of waiting for an expiry.
"""

from __future__ import annotations

import os
import socket


def process_owner(run_id: str) -> str:
    """This process as an owner: host, process and run."""
    return f"{socket.gethostname()}:{os.getpid()}:{run_id}"


def owner_is_gone(owner: str) -> bool:
    """Whether `owner` was a process on this host that no longer runs. An owner on another host, or whose
    process runs, is never judged gone."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, but someone else's
        return False
    return False
