"""Plumbing shared by the CLI's commands: option groups, settings from options, errors as one line.

Every option has help text and a `STUDY_BUDDY_*` variable (`env_name`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from studybuddy.config import (
    DEFAULT_MODEL,
    EGRESS,
    ENV_PREFIX,
    Settings,
    check_egress,
    check_pot_provider,
    parse_languages,
    parse_notes_lang,
    parse_since,
    resolve_ca_bundle,
)
from studybuddy.errors import InputError, StudyBuddyError
from studybuddy.logs import SecretFilter, configure
from studybuddy.units import ExitBudget, parse_duration

if TYPE_CHECKING:
    from studybuddy.runs.admission import Admission

F = TypeVar("F", bound=Callable[..., Any])


def env_name(name: str) -> str:
    return ENV_PREFIX + name


def output_option(func: F) -> F:
    return click.option(
        "-o",
        "--output",
        type=click.Path(path_type=Path, file_okay=False),
        default=Path("notes"),
        show_default=True,
        envvar=env_name("OUTPUT"),
        help="Folder for notes, transcripts and the archive.",
    )(func)


def archive_option(func: F) -> F:
    return click.option(
        "--archive",
        metavar="URL",
        envvar=env_name("ARCHIVE"),
        help="A shared archive and work queue on PostgreSQL (postgresql://user:password@host/db); default: "
        "the SQLite file in the output folder.",
    )(func)


def tor_options(func: F) -> F:
    """Where Tor comes from; shared by the process and tor commands. The password comes from the
    environment only (STUDY_BUDDY_TOR_PASSWORD), never from the command line."""
    decorators = [
        click.option(
            "--tor",
            type=click.Choice(["auto", "system", "embedded", "off"]),
            default="auto",
            show_default=True,
            envvar=env_name("TOR"),
            help="auto: a Tor that answers, else launch one; system: the Tor at --tor-control; "
            "embedded: launch a private tor; off: no Tor (direct, or through --proxy).",
        ),
        click.option(
            "--tor-socks",
            default="127.0.0.1:9050",
            show_default=True,
            envvar=env_name("TOR_SOCKS"),
            help="SOCKS port of the system Tor, HOST:PORT.",
        ),
        click.option(
            "--tor-control",
            default="127.0.0.1:9051",
            show_default=True,
            envvar=env_name("TOR_CONTROL"),
            help="Control port of the system Tor, HOST:PORT (password: STUDY_BUDDY_TOR_PASSWORD).",
        ),
        click.option(
            "--tor-config",
            type=click.Path(path_type=Path, dir_okay=False, exists=True),
            envvar=env_name("TOR_CONFIG"),
            help="Extra torrc lines for the embedded Tor (bridges, exit countries).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def egress_options(func: F) -> F:
    """Proxies, and how yt-dlp gets in; shared by the process and doctor commands."""
    decorators = [
        click.option(
            "--proxy",
            "proxy",
            multiple=True,
            metavar="URL",
            envvar=env_name("PROXY"),
            help="A proxy, SCHEME://[USER:PASSWORD@]HOST:PORT with socks5h, socks5, http or https. "
            "Repeatable (in STUDY_BUDDY_PROXY: separated by spaces).",
        ),
        click.option(
            "--proxy-rotating",
            multiple=True,
            metavar="URL",
            envvar=env_name("PROXY_ROTATING"),
            help="A proxy whose exit IP changes per connection or session (e.g. a provider's -rotate "
            "user name); paced as a pool. Repeatable.",
        ),
        click.option(
            "--proxy-file",
            multiple=True,
            type=click.Path(path_type=Path),
            envvar=env_name("PROXY_FILE"),
            help="Read proxies from a file: one URL a line (optionally followed by 'rotating'), # comments.",
        ),
        click.option(
            "--egress",
            type=click.Choice(EGRESS),
            default="auto",
            show_default=True,
            envvar=env_name("EGRESS"),
            help="Where YouTube traffic leaves from: Tor, the proxies, or both (auto: the proxies when any "
            "is given, else Tor).",
        ),
        click.option(
            "--pot-provider",
            metavar="URL",
            envvar=env_name("POT_PROVIDER"),
            help="Base URL of a bgutil PO token provider (HTTP, e.g. http://127.0.0.1:4416) that yt-dlp "
            "asks for the tokens YouTube's captions need (needs the 'pot' extra).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def pacing_options(func: F) -> F:
    """Per-exit pacing; shared by the process and tor status commands."""
    decorators = [
        click.option(
            "--per-exit",
            default="8/10m",
            show_default=True,
            envvar=env_name("PER_EXIT"),
            help="The most videos per Tor exit (or proxy) per window, COUNT/WINDOW: a ceiling; each exit's "
            "pace adapts below it to what YouTube tolerates.",
        ),
        click.option(
            "--exit-interval",
            default="30s",
            show_default=True,
            envvar=env_name("EXIT_INTERVAL"),
            help="Least time between two videos on one exit (plus up to half as much jitter).",
        ),
        click.option(
            "--exit-cooldown",
            default="30m",
            show_default=True,
            envvar=env_name("EXIT_COOLDOWN"),
            help="How long an exit YouTube blocked that never served is kept out of use (one that served "
            "cools down briefly, longer with each block in a row, at most this).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def note_writing_options(func: F) -> F:
    """How the Anthropic engine writes notes; shared by the process and notes regenerate commands."""
    decorators = [
        click.option(
            "-m",
            "--model",
            default=DEFAULT_MODEL,
            show_default=True,
            envvar=env_name("MODEL"),
            help="Anthropic model that writes the notes.",
        ),
        click.option(
            "--assessment/--no-assessment",
            default=True,
            envvar=env_name("ASSESSMENT"),
            help="Add an assessment (questions with hidden answers) written by a second, cached call.",
        ),
        click.option(
            "--notes-lang",
            envvar=env_name("NOTES_LANG"),
            help="Write the notes in this language (a code like en or de), whatever the transcript's; "
            "default: the transcript's language.",
        ),
        click.option(
            "--max-input-tokens",
            type=click.IntRange(2000, 190_000),
            default=60_000,
            show_default=True,
            envvar=env_name("MAX_INPUT_TOKENS"),
            help="Estimated transcript tokens sent in one call; longer videos are written in sections, "
            "then combined.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


EXIT_INTERRUPTED = 130
INTERRUPTED = "Interrupted: finished videos are saved; run the same command again to continue."


@contextmanager
def stops_like_ctrl_c() -> Iterator[None]:
    """SIGTERM (what `docker stop` sends) stops the run as Ctrl-C does: the videos in progress are finished
    or left for the rerun, Tor is put back, then exit 130 with one line. A second signal of either kind
    hurries the stop (see `Pipeline.hurry`)."""
    in_main_thread = threading.current_thread() is threading.main_thread()  # only it may set handlers
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if in_main_thread else None
    try:
        yield
    except KeyboardInterrupt:
        click.echo(INTERRUPTED, err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def user_errors(debug: bool) -> Iterator[None]:
    """Turn library errors into one line (and an exit code); `--debug` keeps the traceback."""
    try:
        yield
    except StudyBuddyError as exc:
        if debug:
            raise
        raise click.ClickException(str(exc)) from None


def configure_logging(options: dict[str, Any]) -> bool:
    """Log level from --log-level and --debug, secrets masked; returns whether --debug is on."""
    debug = bool(options["debug"])
    level_source = click.get_current_context().get_parameter_source("log_level")
    chosen = getattr(logging, str(options["log_level"]).upper())
    level = logging.DEBUG if debug and level_source is click.core.ParameterSource.DEFAULT else chosen
    configure(level, SecretFilter([os.environ.get("ANTHROPIC_API_KEY", ""), tor_password() or ""]))
    return debug


def positive_duration(text: str, option: str) -> float:
    seconds = parse_duration(text, option=option)
    if seconds <= 0:
        raise InputError(f"{option} {text!r}: must be longer than 0s")
    return seconds


def tor_password() -> str | None:
    return os.environ.get(env_name("TOR_PASSWORD")) or None


def settings_from(options: dict[str, Any]) -> Settings:
    """Validated settings from the process command's options (one clear error per bad value)."""
    return Settings(
        output=options["output"],
        subject=options["subject"],
        auto_subject=options["auto_subject"],
        links=options["links"],
        assessment=options["assessment"],
        notes_lang=parse_notes_lang(options["notes_lang"]),
        max_input_tokens=options["max_input_tokens"],
        note_format=options["note_format"],
        transcript_format=options["transcript_format"],
        parallel=options["parallel"],
        workers=options["workers"],
        **proxy_settings(options),
        pot_provider=check_pot_provider(options["pot_provider"]),
        transcripts=options["transcripts"],
        cookies=check_cookies(options["cookies"]),
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
        batch_poll_s=positive_duration(options["batch_poll"], "--batch-poll"),
        batch_max_wait_s=positive_duration(options["batch_max_wait"], "--batch-max-wait"),
        save_transcript=options["save_transcript"],
        force=options.get("force", False),  # watch and archive retry have no --force
        limit=options["limit"],
        since=parse_since(options["since"]) if options["since"] else None,
        order=options["order"],
        max_retries=options["max_retries"],
        tor=options["tor"],
        tor_socks=options["tor_socks"],
        tor_control=options["tor_control"],
        tor_password=tor_password(),
        tor_config=options["tor_config"],
        per_exit=ExitBudget.parse(options["per_exit"]),
        exit_interval_s=parse_duration(options["exit_interval"], option="--exit-interval"),
        exit_cooldown_s=parse_duration(options["exit_cooldown"], option="--exit-cooldown"),
        max_rotations=options["max_rotations"],
        max_attempts=options["max_attempts"],
        retry_backoff_s=positive_duration(options["retry_backoff"], "--retry-backoff"),
        claim_ttl_s=positive_duration(options["claim_ttl"], "--claim-ttl"),
        archive=options["archive"],
        log_tor_events=options["log_tor_events"],
        keep_temp=options["keep_temp"],
    )


def proxy_settings(options: dict[str, Any]) -> dict[str, Any]:
    """`proxies`, `proxy_problems` and `egress` of Settings, from the egress options."""
    from studybuddy.proxyspec import load_proxies

    loaded = load_proxies(options["proxy"], options["proxy_rotating"], options["proxy_file"])
    egress = check_egress(options["egress"], loaded.proxies)
    return {"proxies": loaded.proxies, "proxy_problems": loaded.bad, "egress": egress}


def check_cookies(path: Path | None) -> Path | None:
    """`--cookies`: a readable Netscape cookies file (checked without loading yt-dlp)."""
    if path is None:
        return None
    from studybuddy.youtube.cookiefile import check_cookie_file

    check_cookie_file(path)
    return path


def run_and_report(
    settings: Settings,
    urls: Sequence[str],
    files: Sequence[Path],
    *,
    json_output: bool,
    admission: Admission | None = None,
) -> int:
    from studybuddy.runs.runner import run  # the heavy part: imported only when there is work to do

    outcome = run(settings, urls, files, json_output=json_output, warn=warn, admission=admission)
    if json_output:
        click.echo(json.dumps(outcome.to_json(), indent=2))
    else:
        click.echo(outcome.report())
    return outcome.exit_code


def warn(line: str) -> None:
    click.echo(line, err=True)
