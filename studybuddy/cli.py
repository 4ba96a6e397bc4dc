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
    NOTE_FORMATS,
    ORDERS,
    TRANSCRIPT_FORMATS,
    Settings,
    env_files_for,
    load_env_files,
    parse_languages,
    parse_since,
    resolve_ca_bundle,
)
from .errors import ConfigError, InputError, StudyBuddyError
from .exits import ExitBudget, parse_duration
from .logs import SecretFilter, configure

if TYPE_CHECKING:
    from .admission import Admission
    from .archive import Archive
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


def _note_writing_options(func: F) -> F:
    """How the Anthropic engine writes notes; shared by the process and notes regenerate commands."""
    decorators = [
        click.option(
            "-m",
            "--model",
            default=DEFAULT_MODEL,
            show_default=True,
            envvar=_env("MODEL"),
            help="Anthropic model that writes the notes.",
        ),
        click.option(
            "--assessment/--no-assessment",
            default=True,
            envvar=_env("ASSESSMENT"),
            help="Add an assessment (questions with hidden answers) written by a second, cached call.",
        ),
        click.option(
            "--max-input-tokens",
            type=click.IntRange(2000, 190_000),
            default=60_000,
            show_default=True,
            envvar=_env("MAX_INPUT_TOKENS"),
            help="Estimated transcript tokens sent in one call; longer videos are written in sections, "
            "then combined.",
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
    "--auto-subject",
    is_flag=True,
    envvar=_env("AUTO_SUBJECT"),
    help="Without --subject: put each note in the most similar subject folder, else a new one named "
    "after the video's keywords or category (shown in the report, recorded in the note).",
)
@click.option(
    "--links/--no-links",
    default=True,
    envvar=_env("LINKS"),
    help="Link each note to the most similar notes in the output folder, and back.",
)
@_note_writing_options
@click.option(
    "--notes/--no-notes",
    default=True,
    envvar=_env("NOTES"),
    help="Write study notes (see --engine); --no-notes saves transcripts only.",
)
@click.option(
    "--engine",
    type=click.Choice(["anthropic", "offline"]),
    envvar=_env("ENGINE"),
    help="Who writes the notes: anthropic (needs ANTHROPIC_API_KEY) or offline (extractive, from the "
    "transcript alone). Default: anthropic when the key is set, else offline.",
)
@click.option(
    "--format",
    "note_format",
    type=click.Choice(NOTE_FORMATS),
    default="md",
    show_default=True,
    envvar=_env("FORMAT"),
    help="md: Obsidian-ready Markdown notes; json: the structured note (meta, sections, usage).",
)
@click.option(
    "--transcript-format",
    type=click.Choice(TRANSCRIPT_FORMATS),
    default="md",
    show_default=True,
    envvar=_env("TRANSCRIPT_FORMAT"),
    help="Format of the transcript saved beside each note: md (timestamp links), txt, srt or vtt.",
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
    "--batch",
    is_flag=True,
    envvar=_env("BATCH"),
    help="Write the notes through the Message Batches API: half the price, slower; a rerun resumes "
    "waiting for the same batch.",
)
@click.option(
    "--batch-poll",
    default="30s",
    show_default=True,
    envvar=_env("BATCH_POLL"),
    help="How often to ask whether a batch has ended.",
)
@click.option(
    "--batch-max-wait",
    default="25h",
    show_default=True,
    envvar=_env("BATCH_MAX_WAIT"),
    help="Stop waiting for a batch after this long (rerun with --batch to keep waiting).",
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
@click.option(
    "--max-attempts",
    type=click.IntRange(1, 100),
    default=8,
    show_default=True,
    envvar=_env("MAX_ATTEMPTS"),
    help="Failed attempts in a row after which a video is given up (see archive retry).",
)
@click.option(
    "--retry-backoff",
    default="5m",
    show_default=True,
    envvar=_env("RETRY_BACKOFF"),
    help="Wait before watch retries a failed video; doubles per failure, at most 6h.",
)
@click.option(
    "--claim-ttl",
    default="2m",
    show_default=True,
    envvar=_env("CLAIM_TTL"),
    help="How long a video claimed by a run that died stays blocked for other runs.",
)
@click.option("--force", is_flag=True, envvar=_env("FORCE"), help="Redo videos the archive says are done.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    envvar=_env("LIMIT"),
    help="At most N videos of each playlist or channel (the first N it lists).",
)
@click.option(
    "--since",
    metavar="DATE",
    envvar=_env("SINCE"),
    help="Only videos of playlists and channels listed as uploaded on or after DATE (YYYY-MM-DD).",
)
@click.option(
    "--order",
    type=click.Choice(ORDERS),
    default="playlist",
    show_default=True,
    envvar=_env("ORDER"),
    help="Take videos in playlist order, or shortest/longest first (durations listed by playlists).",
)
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
    debug = _configure_logging(options)
    with _user_errors(debug):
        settings = _settings(options)
        code = _run(settings, options["urls"], options["files"], json_output=options["json_output"])
    sys.exit(code)


def _configure_logging(options: dict[str, Any]) -> bool:
    """Log level from --log-level and --debug, secrets masked; returns whether --debug is on."""
    debug = bool(options["debug"])
    level_source = click.get_current_context().get_parameter_source("log_level")
    chosen = getattr(logging, str(options["log_level"]).upper())
    level = logging.DEBUG if debug and level_source is click.core.ParameterSource.DEFAULT else chosen
    configure(level, SecretFilter([os.environ.get("ANTHROPIC_API_KEY", ""), _tor_password() or ""]))
    return debug


def _positive_duration(text: str, option: str) -> float:
    seconds = parse_duration(text, option=option)
    if seconds <= 0:
        raise InputError(f"{option} {text!r}: must be longer than 0s")
    return seconds


def _tor_password() -> str | None:
    return os.environ.get(_env("TOR_PASSWORD")) or None


def _settings(options: dict[str, Any]) -> Settings:
    """Validated settings from the process command's options (one clear error per bad value)."""
    return Settings(
        output=options["output"],
        subject=options["subject"],
        auto_subject=options["auto_subject"],
        links=options["links"],
        assessment=options["assessment"],
        max_input_tokens=options["max_input_tokens"],
        note_format=options["note_format"],
        transcript_format=options["transcript_format"],
        parallel=options["parallel"],
        workers=options["workers"],
        proxy=options["proxy"],
        ca_bundle=resolve_ca_bundle(options["ca_bundle"]),
        languages=parse_languages(options["languages"]),
        translate_to=options["translate_to"],
        notes=options["notes"],
        model=options["model"],
        api_key=os.environ.get("ANTHROPIC_API_KEY") or None,
        engine=options["engine"],
        notes_concurrency=options["notes_concurrency"],
        notes_per_minute=options["notes_per_minute"],
        batch=options["batch"],
        batch_poll_s=_positive_duration(options["batch_poll"], "--batch-poll"),
        batch_max_wait_s=_positive_duration(options["batch_max_wait"], "--batch-max-wait"),
        save_transcript=options["save_transcript"],
        force=options.get("force", False),  # watch and archive retry have no --force
        limit=options["limit"],
        since=parse_since(options["since"]) if options["since"] else None,
        order=options["order"],
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
        max_attempts=options["max_attempts"],
        retry_backoff_s=_positive_duration(options["retry_backoff"], "--retry-backoff"),
        claim_ttl_s=_positive_duration(options["claim_ttl"], "--claim-ttl"),
        log_tor_events=options["log_tor_events"],
        keep_temp=options["keep_temp"],
    )


def _run(
    settings: Settings,
    urls: Sequence[str],
    files: Sequence[Path],
    *,
    json_output: bool,
    admission: Admission | None = None,
) -> int:
    from .runner import run  # the heavy part: imported only when there is work to do

    outcome = run(settings, urls, files, json_output=json_output, warn=_warn, admission=admission)
    if json_output:
        click.echo(json.dumps(outcome.to_json(), indent=2))
    else:
        click.echo(outcome.report())
    return outcome.exit_code


@cli.group("notes")
def notes_group() -> None:
    """Work on the notes already written."""


@notes_group.command("regenerate")
@_option_output
@click.option(
    "--older-than-prompt",
    is_flag=True,
    help="Only notes written by other prompts than this version's (the archive records which).",
)
@_note_writing_options
def notes_regenerate(**options: Any) -> None:
    """Write the notes of done videos again from their saved transcripts (no YouTube traffic).

    Each note keeps its path and format; related-note links are written again.
    """
    from .regenerate import regenerate
    from .runner import build_engine

    configure(logging.WARNING, SecretFilter([os.environ.get("ANTHROPIC_API_KEY", "")]))
    with _user_errors(debug=False):
        settings = Settings(
            output=options["output"],
            model=options["model"],
            api_key=os.environ.get("ANTHROPIC_API_KEY") or None,
            assessment=options["assessment"],
            max_input_tokens=options["max_input_tokens"],
        )
        engine = build_engine(settings)
        assert engine is not None  # notes are on
        try:
            outcome = regenerate(
                settings,
                engine,
                older_than_prompt=options["older_than_prompt"],
                on_note=lambda video_id: click.echo(f"{video_id}: regenerated", err=True),
            )
        finally:
            engine.close()
    click.echo(outcome.report())
    sys.exit(outcome.exit_code)


@cli.group("archive")
def archive_group() -> None:
    """Inspect the archive of processed videos."""


@archive_group.command("list")
@_option_output
@click.option(
    "--status",
    type=click.Choice(["done", "failed", "gave_up", "running"]),
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
    from .archive import Status
    from .errors import ErrorKind

    with _user_errors(debug=False), _existing_archive(output) as archive:
        rows = archive.rows(status=Status(status) if status else None, kind=ErrorKind(kind) if kind else None)
    if json_output:
        for row in rows:
            click.echo(json.dumps(row.to_json()))
        return
    for row in rows:
        state = f"{row.status.value}:{row.error_kind}" if row.error_kind else row.status.value
        detail = row.error or (str(row.note_path) if row.note_path else "")
        click.echo(f"{row.video_id}  {state:<16} {row.attempts:>2}  {row.title or '-'}  {detail}")
    click.echo(f"{len(rows)} video(s)", err=True)


@archive_group.command("stats")
@_option_output
@click.option("--json", "json_output", is_flag=True, help="Print the totals as JSON.")
@click.option(
    "--prices",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    envvar=_env("PRICES"),
    help='USD per million tokens by model, TOML or JSON ([models."ID"] input, output, cache_write, '
    "cache_read), over the built-in list prices.",
)
def archive_stats(output: Path, json_output: bool, prices: Path | None) -> None:
    """Totals of an output folder: videos by status and failure kind, tokens by model, estimated cost."""
    from .usage import DEFAULT_TABLE, format_report, usage_report

    with _user_errors(debug=False):
        table = DEFAULT_TABLE.with_file(prices) if prices else DEFAULT_TABLE
        with _existing_archive(output) as archive:
            report = usage_report(archive.rows(), table)
    click.echo(json.dumps(report.to_json(), indent=2) if json_output else format_report(report))


def _existing_archive(output: Path) -> Archive:
    from .archive import Archive

    if not (output / Archive.FILENAME).is_file():
        raise InputError(f"{output}: no archive here (run study-buddy with --output {output} first)")
    return Archive.open(output)


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


def _warn(line: str) -> None:
    click.echo(line, err=True)


def _with_process_options(*, without: set[str]) -> Callable[[click.Command], click.Command]:
    """Give a command the options of `process` (one definition each, so they never drift apart)."""

    def add(command: click.Command) -> click.Command:
        command.params.extend(param for param in process.params if param.name not in without)
        return command

    return add


@_with_process_options(without={"urls", "force", "json_output"})
@cli.command("watch")
@click.argument("urls", nargs=-1, envvar=_env("URLS"))
@click.option(
    "--interval",
    default="10m",
    show_default=True,
    envvar=_env("INTERVAL"),
    help="Time between two checks (60 = seconds, 15m); a check due while one runs is skipped.",
)
def watch_command(**options: Any) -> None:
    """Check playlists, channels and videos on a schedule and process new videos, until Ctrl-C or SIGTERM.

    Failed videos are retried when their backoff has run out (--retry-backoff, --max-attempts). Several
    watchers or runs may share one output folder: each video is claimed before it is processed.
    """
    from .watch import validate_interval, watch

    debug = _configure_logging(options)
    with _user_errors(debug):
        interval = validate_interval(parse_duration(options["interval"], option="--interval"))
        settings = _settings(options)
        stats = watch(settings, options["urls"], options["files"], interval_s=interval, warn=_warn)
    click.echo(stats.report())


@_with_process_options(without={"urls", "files", "force"})
@archive_group.command("retry")
@click.option(
    "--kind",
    type=click.Choice(["all", "blocked", "transient", "notes", "output", "permanent"]),
    default="all",
    show_default=True,
    help="Which failures to retry: one kind, or all but permanent ones (retried only when asked).",
)
def archive_retry(**options: Any) -> None:
    """Retry the failed videos of an output folder now, given-up ones included."""
    from .admission import RETRIED_KINDS, Admission
    from .archive import Status
    from .errors import ErrorKind

    debug = _configure_logging(options)
    with _user_errors(debug):
        settings = _settings(options)
        kinds = RETRIED_KINDS if options["kind"] == "all" else frozenset({ErrorKind(options["kind"])})
        with _existing_archive(settings.output) as archive:
            failed = [*archive.rows(Status.FAILED), *archive.rows(Status.GAVE_UP)]
        video_ids = [row.video_id for row in failed if row.error_kind in kinds]
        if not video_ids:
            click.echo(f"Nothing to retry in {settings.output} (--kind {options['kind']}).")
            return
        admission = Admission(kinds=kinds, gave_up=True)
        code = _run(settings, video_ids, [], json_output=options["json_output"], admission=admission)
    sys.exit(code)
