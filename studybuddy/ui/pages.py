"""What `tor status` and `archive stats` print, for the UI's Tor and Usage pages: the same lines."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from studybuddy.config import Settings
from studybuddy.errors import StudyBuddyError
from studybuddy.store.archive import Archive


def tor_lines(settings: Settings) -> list[str]:
    """`tor status` for the server's Tor settings; a page never launches a Tor, it only connects."""
    from studybuddy.egress.torstatus import status_lines
    from studybuddy.runs.runner import open_tor

    if settings.tor == "off" or not settings.uses_tor:
        return ["Tor is off for this server (--tor off, or --egress proxies): runs use no Tor."]
    if settings.tor == "embedded":
        return ["Tor is embedded: each run launches its own private tor, and it is gone when the run ends."]
    notes: list[str] = []
    try:
        setup = open_tor(dataclasses.replace(settings, tor="system"), notes.append)
        assert setup is not None  # Tor is on
        with setup:
            archive = settings.output / Archive.FILENAME
            if archive.is_file():
                with Archive.open(settings.output) as db:
                    return notes + status_lines(setup.controller, db, settings)
            return notes + status_lines(setup.controller, None, settings)
    except StudyBuddyError as exc:
        return [*notes, f"No Tor answers at {settings.tor_control}: {exc}"]


def usage_lines(output: Path) -> list[str]:
    """`archive stats` of an output folder."""
    from studybuddy.store.usage import format_report, usage_report

    if not (output / Archive.FILENAME).is_file():
        return [f"{output}: no archive here yet (start a run with this output folder first)."]
    with Archive.open(output) as archive:
        return format_report(usage_report(archive.rows())).splitlines()
