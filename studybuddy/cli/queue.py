"""The CLI of the shared queue: `enqueue` adds videos to an archive's queue, `work` processes them (on any
number of machines), `archive migrate --to URL` copies an output folder's SQLite archive into PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from studybuddy.cli.options import (
    configure_logging,
    env_name,
    output_option,
    settings_from,
    stops_like_ctrl_c,
    user_errors,
    warn,
)
from studybuddy.errors import InputError
from studybuddy.units import parse_duration


@click.command("work")
@click.option(
    "--follow",
    is_flag=True,
    envvar=env_name("FOLLOW"),
    help="Keep waiting for new videos when the queue is empty (until Ctrl-C or SIGTERM).",
)
@click.option(
    "--poll",
    default="10s",
    show_default=True,
    envvar=env_name("POLL"),
    help="How often an idle worker looks at the queue again.",
)
def work_command(**options: Any) -> None:
    """Take videos from the shared queue of the archive (--archive) and process them, until it is empty.

    Run it on every machine: no video goes to two workers; the videos of a worker that dies go to the
    others once its claims expire (--claim-ttl). Notes go to the output folder (a shared folder for all).
    """
    from studybuddy.runs.workqueue import work

    debug = configure_logging(options)
    with stops_like_ctrl_c(), user_errors(debug):
        settings = settings_from(options)
        poll_s = parse_duration(options["poll"], option="--poll")
        if poll_s <= 0:
            raise InputError(f"--poll {options['poll']!r}: must be longer than 0s")
        stats = work(settings, follow=options["follow"], poll_s=poll_s, warn=warn)
    click.echo(stats.report())
    sys.exit(1 if stats.failed else 0)


@click.command("enqueue")
@click.argument("urls", nargs=-1)
def enqueue_command(**options: Any) -> None:
    """Queue videos, playlists and channels in the archive (--archive) for `study-buddy work` to take.

    URLS are videos (URLs or ids), playlists and channels; add more with --file. Playlists and channels are
    listed here as `process` lists them (through Tor or --proxy; --limit, --since) and their videos queued.
    A video the archive knows keeps its row (done stays done).
    """
    from studybuddy.runs.workqueue import enqueue
    from studybuddy.youtube.inputs import read_inputs

    debug = configure_logging(options)
    with stops_like_ctrl_c(), user_errors(debug):
        settings = settings_from(options)
        inputs = read_inputs(list(options["urls"]), list(options["files"]))
        for bad in inputs.bad:
            warn(bad.message)
        plan, added = enqueue(settings, inputs, warn=warn)
    for bad in plan.bad:
        warn(bad.message)
    hidden = len(plan.unavailable)
    known = len(plan.video_ids) - hidden - added
    unavailable = f", {hidden} listed as private or deleted (not queued)" if hidden else ""
    click.echo(f"{added} video(s) queued, {known} already in the archive{unavailable}.")
    sys.exit(1 if inputs.bad or plan.bad else 0)


@click.command("migrate")
@output_option
@click.option(
    "--to",
    "target",
    required=True,
    metavar="URL",
    help="The PostgreSQL archive to copy into (postgresql://...); it must be empty.",
)
def archive_migrate(output: Path, target: str) -> None:
    """Copy the SQLite archive of the output folder into a PostgreSQL archive, nothing left out."""
    from studybuddy.store.archive import Archive
    from studybuddy.store.archive_copy import copy_archive
    from studybuddy.store.archive_sql import is_server_url

    with user_errors(debug=False):
        if not (output / Archive.FILENAME).is_file():
            raise InputError(f"{output}: no archive here to migrate")
        if not is_server_url(target):
            Archive.open(output, target)  # says what is wrong with the URL
        with Archive.open(output) as source, Archive.open(output, target) as copy:
            copied = copy_archive(source, copy)
            where = copy.where
    counts = ", ".join(f"{rows} {table}" for table, rows in copied.items())
    click.echo(f"Copied {source.where} into {where}: {counts}.")
