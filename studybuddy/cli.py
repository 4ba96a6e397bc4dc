"""The command line: Click only. Every option has help text and a `STUDY_BUDDY_*` variable.

`study-buddy [OPTIONS] [URLS]...` processes videos (the `process` command is the default);
`study-buddy archive list` shows what was done. Library errors (`StudyBuddyError`) become one clean line;
`--debug` shows tracebacks.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .config import (
    DEFAULT_MODEL,
    ENV_PREFIX,
    Settings,
    env_files_for,
    load_env_files,
    parse_languages,
    resolve_ca_bundle,
)
from .errors import ConfigError, InputError, StudyBuddyError
from .logs import SecretFilter, configure

F = TypeVar("F", bound=Callable[..., Any])
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def _env(name: str) -> str:
    return ENV_PREFIX + name


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


def _option_output(func: F) -> F:
    return click.option(
        "-o",
        "--output",
        type=click.Path(path_type=Path, file_okay=False),
        default=Path("notes"),
        show_default=True,
        envvar=_env("OUTPUT"),
        help="Folder for notes, transcripts and the archive.",
    )(func)


@contextmanager
def _user_errors(debug: bool) -> Iterator[None]:
    """Turn library errors into one line (and an exit code); `--debug` keeps the traceback."""
    try:
        yield
    except StudyBuddyError as exc:
        if debug:
            raise
        raise click.ClickException(str(exc)) from None


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="study-buddy")
def cli() -> None:
    """Turn YouTube videos into structured study notes, one Tor circuit per worker."""


@cli.command("process")
@click.argument("urls", nargs=-1, envvar=_env("URLS"))
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    type=click.Path(path_type=Path),
    envvar=_env("FILE"),
    help="Read video URLs from a file (one per line, # comments). Repeatable.",
)
@click.option(
    "-p", "--parallel", is_flag=True, envvar=_env("PARALLEL"), help="Process several videos at once."
)
@click.option(
    "-w",
    "--workers",
    type=click.IntRange(1, 16),
    default=3,
    show_default=True,
    envvar=_env("WORKERS"),
    help="Worker threads with --parallel (1-16), each with its own session and circuit.",
)
@click.option(
    "--proxy",
    envvar=_env("PROXY"),
    help="SOCKS proxy, socks5h://HOST:PORT; each worker gets its own credentials (own Tor circuit).",
)
@click.option(
    "--ca-bundle",
    envvar=_env("CA_BUNDLE"),
    help="CA certificates to trust (also REQUESTS_CA_BUNDLE / SSL_CERT_FILE).",
)
@click.option(
    "-l",
    "--lang",
    "languages",
    default="en",
    show_default=True,
    envvar=_env("LANG"),
    help="Transcript languages in order of preference, e.g. en,de.",
)
@click.option("--translate-to", envvar=_env("TRANSLATE_TO"), help="Translate transcripts to this language.")
@_option_output
@click.option("-s", "--subject", envvar=_env("SUBJECT"), help="Put the notes in this sub-folder.")
@click.option(
    "-m",
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    envvar=_env("MODEL"),
    help="Anthropic model that writes the notes.",
)
@click.option(
    "--notes/--no-notes",
    default=True,
    envvar=_env("NOTES"),
    help="Write study notes (needs ANTHROPIC_API_KEY); --no-notes saves transcripts only.",
)
@click.option(
    "--save-transcript/--no-save-transcript",
    default=True,
    envvar=_env("SAVE_TRANSCRIPT"),
    help="Save the timestamped transcript beside each note.",
)
@click.option(
    "--notes-per-minute",
    type=click.IntRange(1, 4000),
    default=40,
    show_default=True,
    envvar=_env("NOTES_PER_MINUTE"),
    help="Anthropic requests per minute, shared by all workers.",
)
@click.option(
    "--notes-concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    envvar=_env("NOTES_CONCURRENCY"),
    help="Anthropic calls in flight at once, shared by all workers.",
)
@click.option(
    "--max-retries",
    type=click.IntRange(0, 10),
    default=3,
    show_default=True,
    envvar=_env("MAX_RETRIES"),
    help="Retries of a video after network errors (with exponential backoff).",
)
@click.option("--force", is_flag=True, envvar=_env("FORCE"), help="Redo videos the archive says are done.")
@click.option("--json", "json_output", is_flag=True, help="Print a JSON summary instead of the live view.")
@click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    help="Load settings from this file (KEY=value lines) before the environment.",
)
@click.option(
    "--debug", is_flag=True, envvar=_env("DEBUG"), help="Verbose logs and tracebacks; loads .env.debug."
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    envvar=_env("LOG_LEVEL"),
    help="How much to log on stderr.",
)
def process(
    urls: tuple[str, ...],
    files: tuple[Path, ...],
    parallel: bool,
    workers: int,
    proxy: str | None,
    ca_bundle: str | None,
    languages: str,
    translate_to: str | None,
    output: Path,
    subject: str | None,
    model: str,
    notes: bool,
    save_transcript: bool,
    notes_per_minute: int,
    notes_concurrency: int,
    max_retries: int,
    force: bool,
    json_output: bool,
    env_file: Path | None,
    debug: bool,
    log_level: str,
) -> None:
    """Fetch transcripts of YouTube videos and write study notes.

    URLS are video URLs or ids; add more with --file. Videos the archive says are done are skipped.
    """
    del env_file  # read before Click parsed (see main)
    secrets = SecretFilter(
        [os.environ.get("ANTHROPIC_API_KEY", ""), os.environ.get(_env("TOR_PASSWORD"), "")]
    )
    configure(logging.DEBUG if debug else getattr(logging, log_level.upper()), secrets)
    with _user_errors(debug):
        settings = Settings(
            output=output,
            subject=subject,
            parallel=parallel,
            workers=workers,
            proxy=proxy,
            ca_bundle=resolve_ca_bundle(ca_bundle),
            languages=parse_languages(languages),
            translate_to=translate_to,
            notes=notes,
            model=model,
            api_key=os.environ.get("ANTHROPIC_API_KEY") or None,
            notes_concurrency=notes_concurrency,
            notes_per_minute=notes_per_minute,
            save_transcript=save_transcript,
            force=force,
            max_retries=max_retries,
        )
        code = _run(settings, urls, files, json_output=json_output)
    sys.exit(code)


def _run(settings: Settings, urls: Sequence[str], files: Sequence[Path], *, json_output: bool) -> int:
    from .runner import run  # the heavy part: imported only when there is work to do

    outcome = run(
        settings, urls, files, json_output=json_output, warn=lambda line: click.echo(line, err=True)
    )
    if json_output:
        click.echo(json.dumps(outcome.to_json(), indent=2))
    else:
        click.echo(outcome.report())
    return outcome.exit_code


@cli.group("archive")
def archive_group() -> None:
    """Inspect the archive of processed videos."""


@archive_group.command("list")
@_option_output
@click.option(
    "--status",
    type=click.Choice(["done", "failed", "running"]),
    help="Only videos with this status.",
)
@click.option(
    "--kind",
    type=click.Choice(["blocked", "transient", "permanent", "notes", "output"]),
    help="Only failures of this kind.",
)
@click.option("--json", "json_output", is_flag=True, help="Print JSON lines instead of a table.")
def archive_list(output: Path, status: str | None, kind: str | None, json_output: bool) -> None:
    """List the videos in the archive of an output folder."""
    from .archive import Archive, Status
    from .errors import ErrorKind

    with _user_errors(debug=False):
        if not (output / Archive.FILENAME).is_file():
            raise InputError(f"{output}: no archive here (run study-buddy with --output {output} first)")
        with Archive.open(output) as archive:
            rows = archive.rows(
                status=Status(status) if status else None, kind=ErrorKind(kind) if kind else None
            )
    if json_output:
        for row in rows:
            click.echo(json.dumps(row.to_json()))
        return
    for row in rows:
        state = row.status.value if row.status.value != "failed" else f"failed:{row.error_kind}"
        detail = row.error or (str(row.note_path) if row.note_path else "")
        click.echo(f"{row.video_id}  {state:<16} {row.attempts:>2}  {row.title or '-'}  {detail}")
    click.echo(f"{len(rows)} video(s)", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: load env files (they must be in the environment before Click reads it), then run."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        load_env_files(env_files_for(args, Path.cwd()))
    except (InputError, ConfigError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    try:
        cli.main(args=args, prog_name="study-buddy")
    except KeyboardInterrupt:
        click.echo(
            "Interrupted: finished videos are saved; run the same command again to continue.", err=True
        )
        sys.exit(EXIT_INTERRUPTED)
