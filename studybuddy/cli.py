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
from typing import TYPE_CHECKING, Any, TypeVar

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
from .exits import ExitBudget, parse_duration
from .logs import SecretFilter, configure

if TYPE_CHECKING:
    from .torlaunch import TorSetup

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


def _tor_options(func: F) -> F:
    """Where Tor comes from; shared by the process and tor commands. The password comes from the
    environment only (STUDY_BUDDY_TOR_PASSWORD), never from the command line."""
    decorators = [
        click.option(
            "--tor",
            type=click.Choice(["auto", "system", "embedded", "off"]),
            default="auto",
            show_default=True,
            envvar=_env("TOR"),
            help="auto: a Tor that answers, else launch one; system: the Tor at --tor-control; "
            "embedded: launch a private tor; off: no Tor (direct, or --proxy).",
        ),
        click.option(
            "--tor-socks",
            default="127.0.0.1:9050",
            show_default=True,
            envvar=_env("TOR_SOCKS"),
            help="SOCKS port of the system Tor, HOST:PORT.",
        ),
        click.option(
            "--tor-control",
            default="127.0.0.1:9051",
            show_default=True,
            envvar=_env("TOR_CONTROL"),
            help="Control port of the system Tor, HOST:PORT (password: STUDY_BUDDY_TOR_PASSWORD).",
        ),
        click.option(
            "--tor-config",
            type=click.Path(path_type=Path, dir_okay=False, exists=True),
            envvar=_env("TOR_CONFIG"),
            help="Extra torrc lines for the embedded Tor (bridges, exit countries).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _pacing_options(func: F) -> F:
    """Per-exit pacing; shared by the process and tor status commands."""
    decorators = [
        click.option(
            "--per-exit",
            default="8/10m",
            show_default=True,
            envvar=_env("PER_EXIT"),
            help="Budget of videos per Tor exit per window, COUNT/WINDOW.",
        ),
        click.option(
            "--exit-interval",
            default="30s",
            show_default=True,
            envvar=_env("EXIT_INTERVAL"),
            help="Least time between two videos on one exit (plus up to half as much jitter).",
        ),
        click.option(
            "--exit-cooldown",
            default="30m",
            show_default=True,
            envvar=_env("EXIT_COOLDOWN"),
            help="How long an exit that YouTube blocked is kept out of use.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


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
@_tor_options
@_pacing_options
@click.option(
    "--max-rotations",
    type=click.IntRange(0, 50),
    default=5,
    show_default=True,
    envvar=_env("MAX_ROTATIONS"),
    help="New circuits a video may try after blocks before it is recorded as blocked.",
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
@click.option(
    "--log-tor-events",
    is_flag=True,
    envvar=_env("LOG_TOR_EVENTS"),
    help="Log every Tor circuit and stream event (with --log-level info or --debug).",
)
@click.option(
    "--keep-temp",
    is_flag=True,
    envvar=_env("KEEP_TEMP"),
    help="Keep YouTube's raw answers of each fetch in OUTPUT/.debug/ for debugging.",
)
def process(**options: Any) -> None:
    """Fetch transcripts of YouTube videos and write study notes.

    URLS are video URLs or ids; add more with --file. Videos the archive says are done are skipped.
    """
    debug = bool(options["debug"])
    level_source = click.get_current_context().get_parameter_source("log_level")
    chosen = getattr(logging, str(options["log_level"]).upper())
    level = logging.DEBUG if debug and level_source is click.core.ParameterSource.DEFAULT else chosen
    configure(level, SecretFilter([os.environ.get("ANTHROPIC_API_KEY", ""), _tor_password() or ""]))
    with _user_errors(debug):
        settings = _settings(options)
        code = _run(settings, options["urls"], options["files"], json_output=options["json_output"])
    sys.exit(code)


def _tor_password() -> str | None:
    return os.environ.get(_env("TOR_PASSWORD")) or None


def _settings(options: dict[str, Any]) -> Settings:
    """Validated settings from the process command's options (one clear error per bad value)."""
    return Settings(
        output=options["output"],
        subject=options["subject"],
        parallel=options["parallel"],
        workers=options["workers"],
        proxy=options["proxy"],
        ca_bundle=resolve_ca_bundle(options["ca_bundle"]),
        languages=parse_languages(options["languages"]),
        translate_to=options["translate_to"],
        notes=options["notes"],
        model=options["model"],
        api_key=os.environ.get("ANTHROPIC_API_KEY") or None,
        notes_concurrency=options["notes_concurrency"],
        notes_per_minute=options["notes_per_minute"],
        save_transcript=options["save_transcript"],
        force=options["force"],
        max_retries=options["max_retries"],
        tor=options["tor"],
        tor_socks=options["tor_socks"],
        tor_control=options["tor_control"],
        tor_password=_tor_password(),
        tor_config=options["tor_config"],
        per_exit=ExitBudget.parse(options["per_exit"]),
        exit_interval_s=parse_duration(options["exit_interval"], option="--exit-interval"),
        exit_cooldown_s=parse_duration(options["exit_cooldown"], option="--exit-cooldown"),
        max_rotations=options["max_rotations"],
        log_tor_events=options["log_tor_events"],
        keep_temp=options["keep_temp"],
    )


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


@cli.group("tor")
def tor_group() -> None:
    """Check the Tor that study-buddy uses: its circuits, exits, budgets and cool-downs."""


@tor_group.command("status")
@_tor_options
@_pacing_options
@_option_output
def tor_status(**options: Any) -> None:
    """Print Tor's circuits and exits, and each exit's budget and cool-down from the archive."""
    from .torstatus import archived_limiter, status_lines

    with _user_errors(debug=False), _tor_session(options) as (settings, setup):
        lines = status_lines(setup.controller, archived_limiter(settings), settings)
    click.echo("\n".join(lines))


@tor_group.command("check")
@_tor_options
@click.option(
    "-w",
    "--workers",
    type=click.IntRange(1, 16),
    default=3,
    show_default=True,
    envvar=_env("WORKERS"),
    help="How many worker circuits to open.",
)
def tor_check(**options: Any) -> None:
    """Open one circuit per worker, as a run would, and print which exit each got."""
    from .torstatus import check_lines

    with _user_errors(debug=False), _tor_session(options) as (_settings, setup):
        lines = check_lines(setup.controller, setup.socks, options["workers"])
    click.echo("\n".join(lines))


@contextmanager
def _tor_session(options: dict[str, Any]) -> Iterator[tuple[Settings, TorSetup]]:
    from .runner import open_tor

    if options["tor"] == "off":
        raise InputError("--tor off: these commands need a Tor (auto, system or embedded)")
    settings = Settings(
        output=options.get("output", Path("notes")),
        tor=options["tor"],
        tor_socks=options["tor_socks"],
        tor_control=options["tor_control"],
        tor_password=_tor_password(),
        tor_config=options["tor_config"],
        per_exit=ExitBudget.parse(options.get("per_exit", "8/10m")),
        exit_interval_s=parse_duration(options.get("exit_interval", "30s"), option="--exit-interval"),
        exit_cooldown_s=parse_duration(options.get("exit_cooldown", "30m"), option="--exit-cooldown"),
    )
    setup = open_tor(settings, lambda line: click.echo(line, err=True))
    assert setup is not None  # only --tor off gives none
    with setup:
        yield settings, setup
