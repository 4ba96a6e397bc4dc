"""The offline demo: the real ``study-buddy --parallel --file urls.txt`` against the test bed.

Starts the bed (private Tor network, fake YouTube with a small latency, fake Anthropic), writes a sample
urls.txt, runs the command in this terminal (its live view shows), then lists the notes, shows the start
of one and prints the exact command, with ``ANTHROPIC_API_KEY=<fake>`` in place of the key.
Usage: ``scripts/demo.py [OUTPUT_DIR]`` (default ``./demo-notes``).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from bedctl import CLI, ROOT, Bed, running_bed, say

from tests.bed.youtube_site import load_catalogue

LATENCY_S = 0.05
NORMAL_VIDEOS = 11
SPECIAL_CASES = ("transcripts_disabled", "age_restricted")
EXIT_INTERVAL = "2s"  # the default (30 s) is right for YouTube, too slow for a one-minute demo
RUN_TIMEOUT_S = 240
NOTE_PREVIEW_LINES = 18
PLAIN_NAME_LENGTH = 40  # the preview prefers a note with a plain, short file name
TRANSCRIPT_SUFFIX = ".transcript.md"


def sample_urls() -> str:
    """A urls.txt as a user writes one: several URL forms, a comment, a blank line and one bad line."""
    catalogue = load_catalogue()
    normal = [vid for vid, entry in catalogue.items() if entry.case == "normal"][:NORMAL_VIDEOS]
    special = [next(vid for vid, entry in catalogue.items() if entry.case == case) for case in SPECIAL_CASES]
    forms = ("https://www.youtube.com/watch?v={}", "https://youtu.be/{}", "{}")
    lines = ["# Lectures for this week (lines starting with # are comments)"]
    lines += [forms[number % len(forms)].format(vid) for number, vid in enumerate(normal)]
    lines += ["", f"# special cases: {', '.join(SPECIAL_CASES)} (they fail, and the run says why)"]
    lines += [f"https://www.youtube.com/watch?v={vid}" for vid in special]
    lines += ["https://example.com/this-is-not-a-youtube-link"]
    return "\n".join(lines) + "\n"


def run_demo(bed: Bed, output: Path) -> None:
    urls = output / "urls.txt"
    urls.write_text(sample_urls(), encoding="utf-8")
    args = ["--parallel", "--file", str(urls)]
    extra = {"STUDY_BUDDY_EXIT_INTERVAL": EXIT_INTERVAL}
    say(f"running study-buddy on {urls} (the live view follows)\n")
    result = subprocess.run(
        [CLI, *args],
        env=bed.cli_env(output, notes=True, extra=extra),
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    print()
    say(f"study-buddy exited with {result.returncode} (1: some videos or input lines failed, as planned)")
    show_notes(output)
    shown = bed.shown_env(output, notes=True) | extra | {"ANTHROPIC_API_KEY": "<fake>"}
    command = " ".join(f"{key}={shlex.quote(value)}" for key, value in shown.items())
    say(f"the command it ran:\n{command} \\\n  study-buddy {shlex.join(args)}")


def show_notes(output: Path) -> None:
    notes = sorted(p for p in output.rglob("*.md") if not p.name.endswith(TRANSCRIPT_SUFFIX))
    transcripts = sorted(output.rglob(f"*{TRANSCRIPT_SUFFIX}"))
    say(f"{len(notes)} notes and {len(transcripts)} transcripts in {output}/")
    for path in notes:
        print(f"    {path.relative_to(output)}")
    if notes:
        shown = min(notes, key=lambda path: (not path.name.isascii(), len(path.name) > PLAIN_NAME_LENGTH))
        lines = shown.read_text(encoding="utf-8").splitlines()
        say(f"the first {NOTE_PREVIEW_LINES} lines of {shown.name}:")
        print("\n".join(f"    {line}" for line in lines[:NOTE_PREVIEW_LINES]))
        print("    ...")


def main() -> None:
    output = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "demo-notes").resolve()
    if (output / "urls.txt").is_file() and (output / ".study-buddy.sqlite3").is_file():
        say(f"starting afresh: removing the previous demo's notes in {output}")
        shutil.rmtree(output)  # a folder this demo made (its urls.txt and archive are there)
    output.mkdir(parents=True, exist_ok=True)
    try:
        with running_bed(latency=LATENCY_S) as bed:
            run_demo(bed, output)
    except KeyboardInterrupt:
        sys.exit("demo interrupted; the test bed is stopped")


if __name__ == "__main__":
    main()
