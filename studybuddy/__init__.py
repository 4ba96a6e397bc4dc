"""study-buddy: turn YouTube videos into structured study notes, one Tor circuit per worker.

The CLI (`study-buddy`) is a thin layer over this library::

    from studybuddy import Settings, run
    outcome = run(Settings(parallel=True, workers=4, notes=False), ["dQw4w9WgXcQ"], [])

Heavy modules load on first use, so `study-buddy --help` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Settings": "studybuddy.config",
    "Pipeline": "studybuddy.runs.pipeline",
    "Worker": "studybuddy.runs.workers",
    "WorkerFactory": "studybuddy.runs.workers",
    "run": "studybuddy.runs.runner",
    "RunOutcome": "studybuddy.runs.runner",
    "StudyBuddyError": "studybuddy.errors",
}
__all__ = [
    "Pipeline",
    "RunOutcome",
    "Settings",
    "StudyBuddyError",
    "Worker",
    "WorkerFactory",
    "__version__",
    "run",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
