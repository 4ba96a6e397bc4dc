"""The command line: Click only. The root group, the `process` command (the default) and `main`.

`study-buddy [OPTIONS] [URLS]...` processes videos; the subcommands live in `cli_commands`, the shared
option groups and settings plumbing in `cli_options`. Library errors (`StudyBuddyError`) become one clean
line; `--debug` shows tracebacks.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from studybuddy import __version__
from studybuddy.cli.commands import register
from studybuddy.cli.options import (
    EXIT_INTERRUPTED,
    INTERRUPTED,
    archive_option,
    configure_logging,
    egress_options,
    env_name,
    note_writing_options,
    output_option,
    pacing_options,
    run_and_report,
    settings_from,
    stops_like_ctrl_c,
    tor_options,
    user_errors,
)
from studybuddy.config import (
    NOTE_FORMATS,
    ORDERS,
    TRANSCRIPT_FORMATS,
    TRANSCRIPT_PATHS,
    env_files_for,
    load_env_files,
)
from studybuddy.errors import ConfigError, InputError


class DefaultGroup(click.Group):
    """A group whose default command is `process`: `study-buddy URL...` means `study-buddy process URL...`."""

    default_command = "process"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h", "--version")):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        command = self.commands[self.default_command]
        with click.Context(
            command, info_name=ctx.info_name, parent=ctx.parent, help_option_names=ctx.help_option_names
        ) as sub:
            command.format_usage(sub, formatter)
            command.format_help_text(sub, formatter)
            command.format_options(sub, formatter)
        self.format_commands(ctx, formatter)
        self.format_epilog(ctx, formatter)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="study-buddy")
def cli() -> None:
    """Turn YouTube videos into structured study notes, one Tor circuit per worker."""


@cli.command("process")
@click.argument("urls", nargs=-1, envvar=env_name("URLS"))
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    type=click.Path(path_type=Path),
    envvar=env_name("FILE"),
    help="Read video URLs from a file (one per line, # comments). Repeatable.",
)
@click.option(
    "-p", "--parallel", is_flag=True, envvar=env_name("PARALLEL"), help="Process several videos at once."
)
@click.option(
    "-w",
    "--workers",
    type=click.IntRange(1, 16),
    default=3,
    show_default=True,
    envvar=env_name("WORKERS"),
    help="Worker threads with --parallel (1-16), each with its own session and circuit.",
)
@egress_options
@click.option(
    "--transcripts",
    type=click.Choice(TRANSCRIPT_PATHS),
    default="api",
    show_default=True,
    envvar=env_name("TRANSCRIPTS"),
    help="Which way in comes first: api (youtube-transcript-api; yt-dlp's subtitles when it cannot get "
    "them) or ytdlp (yt-dlp's subtitles first).",
)
@click.option(
    "--cookies",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar=env_name("COOKIES"),
    help="Netscape cookies file for yt-dlp's subtitle path only, sent through each worker's own egress. "
    "YouTube may flag the account.",
)
@click.option(
    "--ca-bundle",
    envvar=env_name("CA_BUNDLE"),
    help="CA certificates to trust (also REQUESTS_CA_BUNDLE / SSL_CERT_FILE).",
)
@click.option(
    "-l",
    "--lang",
    "languages",
    default="en",
    show_default=True,
    envvar=env_name("LANG"),
    help="Transcript languages in order of preference, e.g. en,de.",
)
@click.option(
    "--translate-to", envvar=env_name("TRANSLATE_TO"), help="Translate transcripts to this language."
)
@output_option
@archive_option
@click.option("-s", "--subject", envvar=env_name("SUBJECT"), help="Put the notes in this sub-folder.")
@click.option(
    "--auto-subject",
    is_flag=True,
    envvar=env_name("AUTO_SUBJECT"),
    help="Without --subject: put each note in the most similar subject folder, else a new one named "
    "after the video's keywords or category (shown in the report, recorded in the note).",
)
@click.option(
    "--links/--no-links",
    default=True,
    envvar=env_name("LINKS"),
    help="Link each note to the most similar notes in the output folder, and back.",
)
@note_writing_options
@click.option(
    "--notes/--no-notes",
    default=True,
    envvar=env_name("NOTES"),
    help="Write study notes (see --engine); --no-notes saves transcripts only.",
)
@click.option(
    "--engine",
    type=click.Choice(["anthropic", "offline"]),
    envvar=env_name("ENGINE"),
    help="Who writes the notes: anthropic (needs ANTHROPIC_API_KEY) or offline (extractive, from the "
    "transcript alone). Default: anthropic when the key is set, else offline.",
)
@click.option(
    "--format",
    "note_format",
    type=click.Choice(NOTE_FORMATS),
    default="md",
    show_default=True,
    envvar=env_name("FORMAT"),
    help="md: Obsidian-ready Markdown notes; json: the structured note (meta, sections, usage).",
)
@click.option(
    "--transcript-format",
    type=click.Choice(TRANSCRIPT_FORMATS),
    default="md",
    show_default=True,
    envvar=env_name("TRANSCRIPT_FORMAT"),
    help="Format of the transcript saved beside each note: md (timestamp links), txt, srt or vtt.",
)
@click.option(
    "--save-transcript/--no-save-transcript",
    default=True,
    envvar=env_name("SAVE_TRANSCRIPT"),
    help="Save the timestamped transcript beside each note.",
)
@click.option(
    "--notes-per-minute",
    type=click.IntRange(1, 4000),
    default=40,
    show_default=True,
    envvar=env_name("NOTES_PER_MINUTE"),
    help="Anthropic requests per minute, shared by all workers.",
)
@click.option(
    "--notes-concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    envvar=env_name("NOTES_CONCURRENCY"),
    help="Anthropic calls in flight at once, shared by all workers.",
)
@click.option(
    "--batch",
    is_flag=True,
    envvar=env_name("BATCH"),
    help="Write the notes through the Message Batches API: half the price, slower; a rerun resumes "
    "waiting for the same batch.",
)
@click.option(
    "--batch-poll",
    default="30s",
    show_default=True,
    envvar=env_name("BATCH_POLL"),
    help="How often to ask whether a batch has ended.",
)
@click.option(
    "--batch-max-wait",
    default="25h",
    show_default=True,
    envvar=env_name("BATCH_MAX_WAIT"),
    help="Stop waiting for a batch after this long (rerun with --batch to keep waiting).",
)
@click.option(
    "--max-retries",
    type=click.IntRange(0, 10),
    default=3,
    show_default=True,
    envvar=env_name("MAX_RETRIES"),
    help="Retries of a video after network errors (with exponential backoff).",
)
@tor_options
@pacing_options
@click.option(
    "--max-rotations",
    type=click.IntRange(0, 50),
    default=5,
    show_default=True,
    envvar=env_name("MAX_ROTATIONS"),
    help="Blocks a video may take on exits (or proxies) that serve other videos before it is recorded as "
    "blocked; blocks on exits that serve nothing do not count.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(1, 100),
    default=8,
    show_default=True,
    envvar=env_name("MAX_ATTEMPTS"),
    help="Failed attempts in a row after which a video is given up (see archive retry).",
)
@click.option(
    "--retry-backoff",
    default="5m",
    show_default=True,
    envvar=env_name("RETRY_BACKOFF"),
    help="Wait before watch retries a failed video; doubles per failure, at most 6h.",
)
@click.option(
    "--claim-ttl",
    default="2m",
    show_default=True,
    envvar=env_name("CLAIM_TTL"),
    help="How long a video claimed by a run that died stays blocked for other runs.",
)
@click.option(
    "--force", is_flag=True, envvar=env_name("FORCE"), help="Redo videos the archive says are done."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    envvar=env_name("LIMIT"),
    help="At most N videos of each playlist or channel (the first N it lists).",
)
@click.option(
    "--since",
    metavar="DATE",
    envvar=env_name("SINCE"),
    help="Only videos of playlists and channels listed as uploaded on or after DATE (YYYY-MM-DD).",
)
@click.option(
    "--order",
    type=click.Choice(ORDERS),
    default="playlist",
    show_default=True,
    envvar=env_name("ORDER"),
    help="Take videos in playlist order, or shortest/longest first (durations listed by playlists).",
)
@click.option("--json", "json_output", is_flag=True, help="Print a JSON summary instead of the live view.")
@click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    help="Load settings from this file (KEY=value lines) before the environment.",
)
@click.option(
    "--debug", is_flag=True, envvar=env_name("DEBUG"), help="Verbose logs and tracebacks; loads .env.debug."
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    envvar=env_name("LOG_LEVEL"),
    help="How much to log on stderr.",
)
@click.option(
    "--log-tor-events",
    is_flag=True,
    envvar=env_name("LOG_TOR_EVENTS"),
    help="Log every Tor circuit and stream event (with --log-level info or --debug).",
)
@click.option(
    "--keep-temp",
    is_flag=True,
    envvar=env_name("KEEP_TEMP"),
    help="Keep YouTube's raw answers of each fetch in OUTPUT/.debug/ for debugging.",
)
def process(**options: Any) -> None:
    """Fetch transcripts of YouTube videos and write study notes.

    URLS are video URLs or ids; add more with --file. Videos the archive says are done are skipped.
    """
    debug = configure_logging(options)
    with stops_like_ctrl_c(), user_errors(debug):
        settings = settings_from(options)
        code = run_and_report(settings, options["urls"], options["files"], json_output=options["json_output"])
    sys.exit(code)


register(cli, process)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: load env files (they must be in the environment before Click reads it), then run."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        for warning in load_env_files(env_files_for(args, Path.cwd())):
            click.echo(f"Warning: {warning}", err=True)
    except (InputError, ConfigError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    try:
        cli.main(args=args, prog_name="study-buddy")
    except KeyboardInterrupt:  # Ctrl-C outside a command's own handling (e.g. while options are read)
        click.echo(INTERRUPTED, err=True)
        sys.exit(EXIT_INTERRUPTED)
