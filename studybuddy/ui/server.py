"""`serve`: the web UI on a socket of its own, with a fresh token, until Ctrl-C or SIGTERM.

The socket is bound before uvicorn starts, so a port in use is one clear error, and `--port 0` picks a free
port (the printed address says which). The first Ctrl-C asks every run to finish the videos in progress
and start no more, ends the live feeds, and waits for the runs, as the CLI does; uvicorn's second Ctrl-C
hurries it.
"""

from __future__ import annotations

import secrets
import socket
import threading
import webbrowser
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.concurrency import run_in_threadpool

from studybuddy.config import Settings
from studybuddy.errors import ConfigError
from studybuddy.ui.app import UiConfig, create_app
from studybuddy.ui.guard import allowed_hosts
from studybuddy.ui.runs import RunManager, run_videos
from studybuddy.ui.watching import WatchService

LOOPBACK = ("127.0.0.1", "localhost", "::1")
GRACE_S = 2  # open live feeds get this long to end before uvicorn closes them


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a `ConfigError` that names the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = "in use" if exc.errno == 98 else (exc.strerror or str(exc))
        raise ConfigError(f"--port {port}: {host}:{port} is {reason}; choose another --port") from None
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, telling the runs to stop on the first signal."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self.signalled = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.signalled = True
        self._on_exit()
        super().handle_exit(sig, frame)


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    open_browser: bool,
    interval_s: float,
    say: Callable[[str], None],
) -> None:
    """Serve the UI until stopped; returns once every run has finished its videos."""
    if host not in LOOPBACK:
        say(f"Warning: --host {host}: reachable from other machines; anyone with its token drives it")
    sock = bind(host, port)
    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(24)
    manager = RunManager(run_videos)
    watch = WatchService(settings, run_videos, interval_s=interval_s)

    def stop_everything() -> None:
        manager.stop_all()
        watch.stop()

    async def on_shutdown() -> None:
        stop_everything()
        await run_in_threadpool(manager.join)
        await run_in_threadpool(watch.join)

    config = UiConfig(settings, token, allowed_hosts(host, port))
    app = create_app(config, manager, watch, on_shutdown=on_shutdown)
    name = f"[{host}]" if ":" in host else host
    url = f"http://{name}:{port}/?token={token}"
    server = _Server(
        uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=GRACE_S, lifespan="on"),
        stop_everything,
    )
    say(f"study-buddy ui: {url}")
    say("Ctrl-C stops it (runs finish the videos in progress).")
    watch.start()
    if open_browser:
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    server.run(sockets=[sock])
    if server.signalled:  # stopped by a signal: end as Ctrl-C ends, even if uvicorn's re-raise was lost
        raise KeyboardInterrupt
