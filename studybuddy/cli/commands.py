"""The CLI's subcommands: `notes regenerate`, `archive list|stats|retry`, `tor status|check`, `watch`;
`work`, `enqueue` and `archive migrate` come from `cli_queue`.

`register` adds them to the root group; `watch` and `archive retry` take the options of `process` itself,
so the two never drift apart.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from studybuddy.cli.options import (
    archive_option,
    configure_logging,
    env_name,
    note_writing_options,
    output_option,
    pacing_options,
    proxy_settings,
    run_and_report,
    settings_from,
    stops_like_ctrl_c,
    tor_options,
    tor_password,
    user_errors,
    warn,
)
from studybuddy.cli.queue import archive_migrate, enqueue_command, work_command
from studybuddy.cli.ui import ui_command
from studybuddy.config import (
    DEFAULT_IP_ECHO,
    Settings,
    check_pot_provider,
    parse_notes_lang,
    resolve_ca_bundle,
)
from studybuddy.errors import InputError
from studybuddy.logs import SecretFilter, configure
from studybuddy.units import ExitBudget, parse_duration

if TYPE_CHECKING:
    from studybuddy.egress.torlaunch import TorSetup
    from studybuddy.store.archive import Archive


def register(root: click.Group, process: click.Command) -> None:
    """Add the subcommands to `root`; `watch`, `archive retry` and `doctor` adopt `process`'s options."""
    _adopt_options(watch_command, process, without={"urls", "force", "json_output"})
    _adopt_options(archive_retry, process, without={"urls", "files", "force"})
    _adopt_options(ui_command, process, without={"urls", "files", "force", "json_output"})
    _adopt_options(work_command, process, without={"urls", "files", "force", "json_output"})
    _adopt_options(enqueue_command, process, without={"urls", "force", "json_output"})
    archive_group.add_command(archive_migrate)
    doctor_command.params.extend(param for param in process.params if param.name in DOCTOR_OPTIONS)
    root.add_command(enqueue_command)
    for command in (
        notes_group,
        archive_group,
        tor_group,
        watch_command,
        doctor_command,
        ui_command,
        work_command,
    ):
        root.add_command(command)


def _adopt_options(command: click.Command, source: click.Command, *, without: set[str]) -> None:
    command.params.extend(param for param in source.params if param.name not in without)


DOCTOR_OPTIONS = frozenset(
    {"tor", "tor_socks", "tor_control", "tor_config", "output", "ca_bundle", "model"}
    | {"proxy", "proxy_rotating", "proxy_file", "egress", "pot_provider"}
)


@click.command("doctor")
@click.option(
    "--json", "json_output", is_flag=True, envvar=env_name("DOCTOR_JSON"), help="Print the checks as JSON."
)
@click.option(
    "--check-key",
    is_flag=True,
    envvar=env_name("CHECK_KEY"),
    help="Check the Anthropic key with a 1-token call (costs one token).",
)
@click.option(
    "--ip-echo-url",
    default=DEFAULT_IP_ECHO,
    show_default=True,
    envvar=env_name("IP_ECHO_URL"),
    help="A service that answers with the caller's IP address, asked through each proxy.",
)
def doctor_command(**options: Any) -> None:
    """Check what a run needs, on one screen: Tor, each proxy (and its exit IP), yt-dlp and its JavaScript
    runtime, the PO token provider, the Anthropic key, the CA bundle and free disk. Exit code 1 when a
    check fails; each failed check says how to fix it."""
    from studybuddy.runs.doctor import doctor_checks, exit_code, format_checks

    configure(logging.WARNING, SecretFilter([os.environ.get("ANTHROPIC_API_KEY", ""), tor_password() or ""]))
    with user_errors(debug=False):
        settings = Settings(
            output=options["output"],
            model=options["model"],
            api_key=os.environ.get("ANTHROPIC_API_KEY") or None,
            ca_bundle=resolve_ca_bundle(options["ca_bundle"]),
            pot_provider=check_pot_provider(options["pot_provider"]),
            tor=options["tor"],
            tor_socks=options["tor_socks"],
            tor_control=options["tor_control"],
            tor_password=tor_password(),
            **proxy_settings(options),
        )
        checks = list(
            doctor_checks(settings, ip_echo_url=options["ip_echo_url"], check_key=options["check_key"])
        )
    if options["json_output"]:
        data = {"checks": [check.to_json() for check in checks], "exit_code": exit_code(checks)}
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(format_checks(checks))
    sys.exit(exit_code(checks))


@click.group("notes")
def notes_group() -> None:
    """Work on the notes already written."""


@notes_group.command("regenerate")
@output_option
@archive_option
@click.option(
    "--older-than-prompt",
    is_flag=True,
    help="Only notes written by other prompts than this version's (the archive records which).",
)
@note_writing_options
def notes_regenerate(**options: Any) -> None:
    """Write the notes of done videos again from their saved transcripts (no YouTube traffic).

    Each note keeps its path and format; related-note links are written again.
    """
    from studybuddy.notes.regenerate import regenerate
    from studybuddy.runs.runner import build_engine

    configure(logging.WARNING, SecretFilter([os.environ.get("ANTHROPIC_API_KEY", "")]))
    with user_errors(debug=False):
        settings = Settings(
            output=options["output"],
            model=options["model"],
            api_key=os.environ.get("ANTHROPIC_API_KEY") or None,
            assessment=options["assessment"],
            notes_lang=parse_notes_lang(options["notes_lang"]),
            max_input_tokens=options["max_input_tokens"],
            archive=options["archive"],
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


@click.group("archive")
def archive_group() -> None:
    """Inspect the archive of processed videos."""


@archive_group.command("list")
@output_option
@archive_option
@click.option(
    "--status",
    type=click.Choice(["done", "failed", "gave_up", "running", "queued"]),
    help="Only videos with this status.",
)
@click.option(
    "--kind",
    type=click.Choice(["blocked", "transient", "permanent", "notes", "output", "error"]),
    help="Only failures of this kind (error: a bug to report, see README).",
)
@click.option("--json", "json_output", is_flag=True, help="Print JSON lines instead of a table.")
def archive_list(
    output: Path, archive: str | None, status: str | None, kind: str | None, json_output: bool
) -> None:
    """List the videos in the archive of an output folder."""
    from studybuddy.errors import ErrorKind
    from studybuddy.store.archive_rows import Status

    with user_errors(debug=False), _existing_archive(output, archive) as store:
        rows = store.rows(status=Status(status) if status else None, kind=ErrorKind(kind) if kind else None)
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
@output_option
@archive_option
@click.option("--json", "json_output", is_flag=True, help="Print the totals as JSON.")
@click.option(
    "--prices",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    envvar=env_name("PRICES"),
    help='USD per million tokens by model, TOML or JSON ([models."ID"] input, output, cache_write, '
    "cache_read), over the built-in list prices.",
)
def archive_stats(output: Path, archive: str | None, json_output: bool, prices: Path | None) -> None:
    """Totals of an output folder: videos by status and failure kind, tokens by model, estimated cost."""
    from studybuddy.store.usage import DEFAULT_TABLE, format_report, usage_report

    with user_errors(debug=False):
        table = DEFAULT_TABLE.with_file(prices) if prices else DEFAULT_TABLE
        with _existing_archive(output, archive) as store:
            report = usage_report(store.rows(), table)
    click.echo(json.dumps(report.to_json(), indent=2) if json_output else format_report(report))


def _existing_archive(output: Path, url: str | None) -> Archive:
    from studybuddy.store.archive import Archive

    if not _has_archive(output, url):
        raise InputError(f"{output}: no archive here (run study-buddy with --output {output} first)")
    return Archive.open(output, url)


def _has_archive(output: Path, url: str | None) -> bool:
    """Whether there is an archive to read: on the server `--archive` names, or the output folder's file."""
    from studybuddy.store.archive import Archive

    return url is not None or (output / Archive.FILENAME).is_file()


@click.group("tor")
def tor_group() -> None:
    """Check the Tor that study-buddy uses: its circuits, exits, budgets and cool-downs."""


@tor_group.command("status")
@tor_options
@pacing_options
@output_option
@archive_option
def tor_status(**options: Any) -> None:
    """Print Tor's circuits and exits, and each exit's budget and cool-down from the archive."""
    from studybuddy.egress.torstatus import status_lines
    from studybuddy.store.archive import Archive

    output, url = options["output"], options["archive"]
    with user_errors(debug=False), ExitStack() as stack:
        archive = stack.enter_context(Archive.open(output, url)) if _has_archive(output, url) else None
        settings, setup = stack.enter_context(
            _tor_session(options)
        )  # after the archive: a bad URL fails fast
        lines = status_lines(setup.controller, archive, settings)
    click.echo("\n".join(lines))


@tor_group.command("check")
@tor_options
@click.option(
    "-w",
    "--workers",
    type=click.IntRange(1, 16),
    default=3,
    show_default=True,
    envvar=env_name("WORKERS"),
    help="How many worker circuits to open.",
)
def tor_check(**options: Any) -> None:
    """Open one circuit per worker, as a run would, and print which exit each got."""
    from studybuddy.egress.torstatus import check_lines

    with user_errors(debug=False), _tor_session(options) as (_settings, setup):
        lines = check_lines(setup.controller, setup.socks, options["workers"])
    click.echo("\n".join(lines))


@contextmanager
def _tor_session(options: dict[str, Any]) -> Iterator[tuple[Settings, TorSetup]]:
    from studybuddy.runs.runner import open_tor

    if options["tor"] == "off":
        raise InputError("--tor off: these commands need a Tor (auto, system or embedded)")
    settings = Settings(
        output=options.get("output", Path("notes")),
        tor=options["tor"],
        tor_socks=options["tor_socks"],
        tor_control=options["tor_control"],
        tor_password=tor_password(),
        tor_config=options["tor_config"],
        per_exit=ExitBudget.parse(options.get("per_exit", "8/10m")),
        exit_interval_s=parse_duration(options.get("exit_interval", "30s"), option="--exit-interval"),
        exit_cooldown_s=parse_duration(options.get("exit_cooldown", "30m"), option="--exit-cooldown"),
    )
    setup = open_tor(settings, lambda line: click.echo(line, err=True))
    assert setup is not None  # only --tor off gives none
    with setup:
        yield settings, setup


@click.command("watch")
@click.argument("urls", nargs=-1, envvar=env_name("URLS"))
@click.option(
    "--interval",
    default="10m",
    show_default=True,
    envvar=env_name("INTERVAL"),
    help="Time between two checks (60 = seconds, 15m); a check due while one runs is skipped.",
)
def watch_command(**options: Any) -> None:
    """Check playlists, channels and videos on a schedule and process new videos, until Ctrl-C or SIGTERM.

    Failed videos are retried when their backoff has run out (--retry-backoff, --max-attempts). Several
    watchers or runs may share one output folder: each video is claimed before it is processed.
    """
    from studybuddy.runs.watch import validate_interval, watch

    debug = configure_logging(options)
    with user_errors(debug):
        interval = validate_interval(parse_duration(options["interval"], option="--interval"))
        settings = settings_from(options)
        stats = watch(settings, options["urls"], options["files"], interval_s=interval, warn=warn)
    click.echo(stats.report())


@archive_group.command("retry")
@click.option(
    "--kind",
    type=click.Choice(["all", "blocked", "transient", "notes", "output", "permanent", "error"]),
    default="all",
    show_default=True,
    help="Which failures to retry: one kind, or all but permanent and error ones (retried only when asked).",
)
def archive_retry(**options: Any) -> None:
    """Retry the failed videos of an output folder now, given-up ones included."""
    from studybuddy.runs.admission import retry_selection

    debug = configure_logging(options)
    with stops_like_ctrl_c(), user_errors(debug):
        settings = settings_from(options)
        with _existing_archive(settings.output, settings.archive) as archive:
            video_ids, admission = retry_selection(archive, options["kind"])
        if not video_ids:
            click.echo(f"Nothing to retry in {settings.output} (--kind {options['kind']}).")
            return
        code = run_and_report(
            settings, video_ids, [], json_output=options["json_output"], admission=admission
        )
    sys.exit(code)
