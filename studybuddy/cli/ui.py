"""`study-buddy ui`: the web UI. Click only; the web libraries (the `ui` extra) are imported when it runs."""

from __future__ import annotations

from typing import Any

import click

from studybuddy.cli.options import configure_logging, env_name, settings_from, stops_like_ctrl_c, user_errors
from studybuddy.units import parse_duration

UI_MODULES = frozenset({"starlette", "uvicorn", "jinja2", "markupsafe", "multipart", "python_multipart"})
INSTALL_HINT = "the web UI needs the 'ui' extra: pip install 'study-buddy[ui]'"


@click.command("ui")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar=env_name("UI_HOST"),
    help="Address to listen on; anything but loopback is reachable from other machines (warned).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    envvar=env_name("UI_PORT"),
    help="Port to listen on (0: any free port; the printed address says which).",
)
@click.option(
    "--no-browser",
    is_flag=True,
    envvar=env_name("UI_NO_BROWSER"),
    help="Only print the address (with its token); do not open a browser.",
)
@click.option(
    "--watch-interval",
    default="10m",
    show_default=True,
    envvar=env_name("UI_WATCH_INTERVAL"),
    help="Time between two checks of the playlists and channels watched from the Watch page.",
)
def ui_command(**options: Any) -> None:
    """Start the web UI: start runs, watch them live, browse notes, retry failures, in a browser.

    The other options are the defaults of the runs started from the page (the form overrides some).
    """
    debug = configure_logging(options)
    try:
        from studybuddy.ui.server import serve
    except ImportError as exc:
        if exc.name not in UI_MODULES:
            raise
        raise click.ClickException(INSTALL_HINT) from None
    with stops_like_ctrl_c(), user_errors(debug):
        settings = settings_from(options)
        interval = parse_duration(options["watch_interval"], option="--watch-interval")
        serve(
            settings,
            host=options["host"],
            port=options["port"],
            open_browser=not options["no_browser"],
            interval_s=interval,
            say=lambda line: click.echo(line, err=line.startswith("Warning")),
        )
