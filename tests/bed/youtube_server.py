"""A fake HTTPS ``www.youtube.com`` for the test bed, with per-exit rate limits that block like YouTube.

One TLS listener per address (127.0.0.11, 127.0.0.12, ...: where each Tor exit of ``tornet`` resolves
``www.youtube.com``); a connection's exit is the local address it arrived on. On the clients' listener
(127.0.0.10, where the bed's proxies resolve ``www.youtube.com``) each client is its own address instead: a
proxy's source address is the "exit" the statistics and limits know it by. The certificate covers
``www.youtube.com``, ``youtube.com`` and ``m.youtube.com`` and comes from a ``trustme`` test CA written to
``ca_bundle`` (give it to the product with ``--ca-bundle``). What it serves (the catalogue, the request
kinds watch/player/captions/oembed/other, every answer) is ``tests.bed.youtube_site``.

Limits (``Limit``): an exit may be served at most ``videos`` watch pages in any sliding ``window`` seconds
(blocked answers do not count). The watch request over the limit blocks the exit for ``block_for``
seconds, answered in one ``style``:

- ``bot_check``: watch pages still come, the player answers LOGIN_REQUIRED "Sign in to confirm you’re
  not a bot" (youtube-transcript-api raises RequestBlocked);
- ``http_429``: every request gets HTTP 429 (IpBlocked);
- ``recaptcha``: watch pages are a reCAPTCHA form (IpBlocked);
- ``cycle``: each new block of an exit takes the next of the three.

Any other request of a blocked exit gets 429. A server-wide ``limit`` applies to every exit without an
entry in ``exit_limits`` (an entry of None: no limit for that exit). ``latency`` seconds are slept before
every answer.

Control API: plain HTTP on 127.0.0.1 (``control_url``), never on the exits' addresses, so the test bed's
own calls are not counted: ``GET /stats`` (the JSON of ``FakeYouTube.stats``), ``POST /reset`` (zero
the stats and forget windows and blocks; settings stay), ``POST /configure`` with JSON
``{"latency": 0.1, "limit": {"videos": 3, "window": 60, "block_for": 30, "style": "cycle"},
"exit_limits": {"127.0.0.12": null}, "site": {"manual_po_tokens": true, "broken_formats": ["json3"]}}``
(keys left out stay as they are; ``site``: ``tests.bed.youtube_site.SiteOptions``).

Scripts: ``python -m tests.bed.youtube_server --addresses 127.0.0.11,127.0.0.12 --port 443 --ca-out DIR``
prints one JSON line (``ca_bundle``, ``control_url``, ``addresses``, ``port``) when ready and serves until
SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import shutil
import signal
import ssl
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import trustme

from tests.bed.youtube_site import (
    BLOCK_STYLES,
    CATALOGUE_PATH,
    KINDS,
    Catalogue,
    Reply,
    SiteOptions,
    classify_request,
    load_catalogue,
    youtube_answer,
)

CERT_NAMES = ("www.youtube.com", "youtube.com", "m.youtube.com")
CYCLE = "cycle"
CONTROL_HOST = "127.0.0.1"
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0  # an idle keep-alive connection is closed after this many seconds
PORT_ATTEMPTS = 3  # port 0: the first address picks a free port, which the others may already use
_JSON, _TEXT = "application/json", "text/plain"


@dataclass(frozen=True)
class Limit:
    """At most ``videos`` watch pages per exit in any ``window`` seconds, else blocked ``block_for`` s."""

    videos: int
    window: float
    block_for: float
    style: str = "bot_check"

    def __post_init__(self) -> None:
        if self.style not in (*BLOCK_STYLES, CYCLE):
            raise ValueError(
                f"block style {self.style!r}: expected one of {', '.join((*BLOCK_STYLES, CYCLE))}"
            )
        if self.videos < 0 or self.window <= 0 or self.block_for < 0:
            raise ValueError(f"{self}: videos >= 0, window > 0 and block_for >= 0 expected")

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Limit | None:
        return None if data is None else cls(**data)


@dataclass
class _ExitState:
    """What one exit did since the last reset."""

    served_at: deque[float] = field(default_factory=deque)  # times of watch pages in the window
    blocked_until: float = -math.inf
    style: str = ""
    requests: Counter[str] = field(default_factory=Counter)
    videos_served: int = 0
    blocks: Counter[str] = field(default_factory=Counter)  # blocks started, by style
    blocked_requests: Counter[str] = field(default_factory=Counter)  # requests refused, by style

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            "requests": {kind: self.requests[kind] for kind in KINDS},
            "videos_served": self.videos_served,
            "blocks": {style: self.blocks[style] for style in BLOCK_STYLES},
            "blocked_requests": {style: self.blocked_requests[style] for style in BLOCK_STYLES},
            "blocked_for": round(max(0.0, self.blocked_until - now), 3),
        }


_KEEP: Any = object()  # configure(): leave this setting as it is


class ServerState:
    """Settings, limiter and statistics shared by every listener; thread-safe."""

    def __init__(self, addresses: Iterable[str], catalogue: Catalogue, clock: Callable[[], float]) -> None:
        self.catalogue = catalogue
        self.addresses = tuple(addresses)
        self.latency = 0.0
        self.limit: Limit | None = None
        self.exit_limits: dict[str, Limit | None] = {}
        self.site = SiteOptions()
        self._clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._epoch = self._clock()
            self._wall_epoch = time.time()
            self._exits = {address: _ExitState() for address in self.addresses}
            self._fetches: Counter[str] = Counter()
            self._timeline: list[tuple[float, str, str, str | None, str]] = []
            self._connections: Counter[tuple[str, str]] = Counter()
            self._tls_failures: Counter[tuple[str, str]] = Counter()
            self._cookies: Counter[tuple[str, str]] = Counter()

    def configure(
        self,
        *,
        latency: float = _KEEP,
        limit: Limit | None = _KEEP,
        exit_limits: Any = _KEEP,
        site: SiteOptions = _KEEP,
    ) -> None:
        """Change settings: ``exit_limits`` (address -> Limit or None) replaces the previous map."""
        with self._lock:
            if site is not _KEEP:
                self.site = site
            if latency is not _KEEP:
                self.latency = float(latency)
            if limit is not _KEEP:
                self.limit = limit
            if exit_limits is not _KEEP:
                self.exit_limits = dict(exit_limits)

    def configure_json(self, data: Mapping[str, Any]) -> None:
        unknown = set(data) - {"latency", "limit", "exit_limits", "site"}
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        changes: dict[str, Any] = {}
        if "latency" in data:
            changes["latency"] = float(data["latency"])
        if "limit" in data:
            changes["limit"] = Limit.from_json(data["limit"])
        if "site" in data:
            changes["site"] = SiteOptions.from_json(data["site"])
        if "exit_limits" in data:
            changes["exit_limits"] = {
                address: Limit.from_json(v) for address, v in data["exit_limits"].items()
            }
        self.configure(**changes)

    def admit(self, exit_address: str, kind: str) -> str | None:
        """None to answer normally, or the block style the request of ``exit_address`` gets."""
        with self._lock:
            now = self._clock()
            state = self._exit(exit_address)
            if now < state.blocked_until:
                return state.style
            limit = self.exit_limits.get(exit_address, self.limit)
            if kind != "watch" or limit is None:
                return None
            while state.served_at and state.served_at[0] <= now - limit.window:
                state.served_at.popleft()
            if len(state.served_at) < limit.videos:
                state.served_at.append(now)
                return None
            started = sum(state.blocks.values())
            state.style = BLOCK_STYLES[started % len(BLOCK_STYLES)] if limit.style == CYCLE else limit.style
            state.blocked_until = now + limit.block_for
            state.blocks[state.style] += 1
            return state.style

    def record(
        self, exit_address: str, kind: str, video_id: str | None, reply: Reply, block: str | None
    ) -> None:
        """Count one answered request (``block``: the style it was refused in).

        A video's fetch is complete when its captions were served with a body (an empty one is not).
        """
        status, _content_type, body = reply
        with self._lock:
            state = self._exit(exit_address)
            state.requests[kind] += 1
            if block is not None:
                state.blocked_requests[block] += 1
            elif kind == "watch" and status == 200:
                state.videos_served += 1
            elif kind == "captions" and status == 200 and body and video_id is not None:
                self._fetches[video_id] += 1
            outcome = block or ("ok" if status == 200 else str(status))
            self._timeline.append(
                (round(self._clock() - self._epoch, 3), exit_address, kind, video_id, outcome)
            )

    def record_cookies(self, exit_address: str, names: Iterable[str]) -> None:
        with self._lock:
            self._cookies.update((exit_address, name) for name in names)

    def record_connection(self, peer: str, local: str, *, tls_ok: bool) -> None:
        with self._lock:
            (self._connections if tls_ok else self._tls_failures)[(peer, local)] += 1

    def stats(self) -> dict[str, Any]:
        """Counts since the last reset, as JSON-ready data:

        - ``exits``: address -> ``requests`` (by kind), ``videos_served`` (watch pages served unblocked),
          ``blocks`` (blocks started, by style), ``blocked_requests`` (by style), ``blocked_for`` (s left);
        - ``videos``: video id -> complete fetches (captions served with a body);
        - ``timeline``: ``[seconds since reset, exit, kind, video id or None, outcome]`` per request, the
          outcome being "ok", the block style, or the HTTP status;
        - ``connections`` / ``tls_failures``: ``{peer, local, count}`` per TLS handshake that worked / failed;
        - ``cookies``: ``{exit, name, count}``: the cookies (names only) requests of each exit carried;
        - ``since`` (wall-clock time of the reset) and ``settings`` (latency, limit, exit_limits).
        """
        with self._lock:
            now = self._clock()
            return {
                "since": self._wall_epoch,
                "exits": {address: state.as_json(now) for address, state in self._exits.items()},
                "videos": dict(self._fetches),
                "timeline": [list(event) for event in self._timeline],
                "connections": _pairs(self._connections),
                "tls_failures": _pairs(self._tls_failures),
                "cookies": [
                    {"exit": exit_, "name": name, "count": count}
                    for (exit_, name), count in sorted(self._cookies.items())
                ],
                "settings": {
                    "site": self.site.as_json(),
                    "latency": self.latency,
                    "limit": _limit_json(self.limit),
                    "exit_limits": {address: _limit_json(lim) for address, lim in self.exit_limits.items()},
                },
            }

    def _exit(self, address: str) -> _ExitState:
        return self._exits.setdefault(address, _ExitState())


def _pairs(counts: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"peer": peer, "local": local, "count": count} for (peer, local), count in sorted(counts.items())]


def _limit_json(limit: Limit | None) -> dict[str, Any] | None:
    return None if limit is None else dataclasses.asdict(limit)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    disable_nagle_algorithm = True  # headers and body go out in two writes: do not wait for an ACK

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def _serve(self, body: bytes) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._serve(b"")

    def do_POST(self) -> None:
        self._serve(self.rfile.read(int(self.headers.get("content-length") or 0)))

    def _send(self, reply: Reply) -> None:
        status, content_type, text = reply
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _YouTubeHandler(_Handler):
    server: _ExitListener

    def _serve(self, body: bytes) -> None:
        state = self.server.state
        # an exit is told by where its connection arrived; a proxy (on the clients' listener) by its address
        exit_address = self.client_address[0] if self.server.by_peer else self.connection.getsockname()[0]
        kind, video_id, query = classify_request(self.command, self.path, body)
        time.sleep(state.latency)
        block = state.admit(exit_address, kind)
        reply = youtube_answer(state.catalogue, kind, video_id, query, block, exit_address, state.site)
        cookies = self.headers.get("Cookie")
        if cookies:
            state.record_cookies(exit_address, (part.split("=")[0].strip() for part in cookies.split(";")))
        state.record(exit_address, kind, video_id, reply, block)
        self._send(reply)


class _ControlHandler(_Handler):
    server: _ControlServer

    def _serve(self, body: bytes) -> None:
        state = self.server.state
        route = (self.command, self.path)
        try:
            if route == ("POST", "/reset"):
                state.reset()
            elif route == ("POST", "/configure"):
                state.configure_json(json.loads(body or b"{}"))
            elif route != ("GET", "/stats"):
                self._send((404, _TEXT, f"no control endpoint {self.command} {self.path}"))
                return
        except (ValueError, TypeError, AttributeError) as error:
            self._send((400, _TEXT, f"bad settings: {error}"))
            return
        self._send((200, _JSON, json.dumps(state.stats(), ensure_ascii=False)))


class _ExitListener(ThreadingHTTPServer):
    """HTTPS on one exit address; the TLS handshake happens in the connection's own thread."""

    daemon_threads = True

    def __init__(
        self, address: str, port: int, context: ssl.SSLContext, state: ServerState, *, by_peer: bool = False
    ) -> None:
        super().__init__((address, port), _YouTubeHandler)
        self.context = context
        self.state = state
        self.by_peer = by_peer

    def finish_request(self, request: Any, client_address: Any) -> None:
        peer, local = client_address[0], request.getsockname()[0]
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except OSError:  # ssl.SSLError included: an untrusting client, a scanner, a timeout
            self.state.record_connection(peer, local, tls_ok=False)
            return
        self.state.record_connection(peer, local, tls_ok=True)
        with connection:
            super().finish_request(connection, client_address)


class _ControlServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, state: ServerState) -> None:
        super().__init__((CONTROL_HOST, port), _ControlHandler)
        self.state = state


class FakeYouTube:
    """A running fake YouTube: TLS listeners on each address, a control server, a CA bundle file."""

    def __init__(
        self,
        state: ServerState,
        servers: list[ThreadingHTTPServer],
        ca: trustme.CA,
        ca_bundle: Path,
        own_dir: bool,
    ) -> None:
        """Serve ``servers`` (the exit listeners, then the control server) in daemon threads."""
        self.state = state
        self.ca = ca  # may sign other servers of the bed (the https proxy), trusted by the same bundle
        self.ca_bundle = str(ca_bundle)
        self.addresses = state.addresses
        self.port = int(servers[0].server_address[1])
        self.control_url = f"http://{CONTROL_HOST}:{servers[-1].server_address[1]}"
        self._servers = servers
        self._own_dir = own_dir
        self._threads = [
            threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-youtube", daemon=True)
            for server in servers
        ]
        for thread in self._threads:
            thread.start()

    @classmethod
    def start(
        cls,
        addresses: Iterable[str],
        port: int = 443,
        *,
        catalogue: Catalogue | Path | None = None,
        client_addresses: Iterable[str] = (),
        latency: float = 0.0,
        limit: Limit | None = None,
        exit_limits: Mapping[str, Limit | None] | None = None,
        control_port: int = 0,
        ca_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> FakeYouTube:
        """Listen on ``port`` of every address (0: one free port shared by all) and serve the catalogue.

        On ``client_addresses`` too, where each client is told apart by its own address (the bed's proxies
        connect from their own source addresses) instead of by the address it arrived on (Tor exits)."""
        videos = catalogue if isinstance(catalogue, dict) else load_catalogue(catalogue or CATALOGUE_PATH)
        state = ServerState(addresses, videos, clock)
        state.configure(latency=latency, limit=limit, exit_limits=exit_limits or {})
        own_dir = ca_dir is None
        directory = Path(tempfile.mkdtemp(prefix="fake-youtube-")) if ca_dir is None else ca_dir
        ca = trustme.CA()
        ca_bundle = directory / "youtube-ca.pem"
        ca.cert_pem.write_to_path(ca_bundle)
        certificate = ca.issue_cert(*CERT_NAMES)
        try:
            listeners = _bind_all(state, port, certificate, tuple(client_addresses))
        except OSError:
            if own_dir:
                shutil.rmtree(directory, ignore_errors=True)
            raise
        return cls(state, [*listeners, _ControlServer(control_port, state)], ca, ca_bundle, own_dir)

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def reset(self) -> None:
        self.state.reset()

    def configure(
        self,
        *,
        latency: float = _KEEP,
        limit: Limit | None = _KEEP,
        exit_limits: Any = _KEEP,
        site: SiteOptions = _KEEP,
    ) -> None:
        """Change ``latency``, ``limit``, ``exit_limits`` (address -> Limit or None; replaces the map) or
        the ``site`` switches."""
        self.state.configure(latency=latency, limit=limit, exit_limits=exit_limits, site=site)

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._own_dir:
            shutil.rmtree(Path(self.ca_bundle).parent, ignore_errors=True)

    def __enter__(self) -> FakeYouTube:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _bind_all(
    state: ServerState, port: int, certificate: trustme.LeafCert, by_peer: tuple[str, ...]
) -> list[_ExitListener]:
    """One listener per address, all on one port (port 0: retried if another address has it taken)."""
    for _ in range(PORT_ATTEMPTS - 1 if port == 0 else 0):
        with contextlib.suppress(OSError):
            return _bind_once(state, port, certificate, by_peer)
    return _bind_once(state, port, certificate, by_peer)


def _bind_once(
    state: ServerState, port: int, certificate: trustme.LeafCert, by_peer: tuple[str, ...]
) -> list[_ExitListener]:
    listeners: list[_ExitListener] = []
    try:
        for address in (*state.addresses, *by_peer):
            chosen = listeners[0].server_address[1] if listeners else port
            context = _tls_context(certificate)
            listeners.append(_ExitListener(address, int(chosen), context, state, by_peer=address in by_peer))
    except OSError:
        for listener in listeners:
            listener.server_close()
        raise
    return listeners


def _tls_context(certificate: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate.configure_cert(context)
    return context


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the fake www.youtube.com of the test bed.")
    parser.add_argument("--addresses", required=True, help="comma-separated listen addresses (one per exit)")
    parser.add_argument(
        "--client-addresses",
        default="",
        help="comma-separated addresses whose clients count by their address",
    )
    parser.add_argument("--port", type=int, default=443, help="port on every address (0: a free one)")
    parser.add_argument("--ca-out", type=Path, required=True, help="directory for youtube-ca.pem")
    parser.add_argument("--control-port", type=int, default=0, help="control port on 127.0.0.1 (0: free)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds slept before every answer")
    parser.add_argument("--limit", help="VIDEOS/WINDOW/BLOCK_FOR[/STYLE], e.g. 5/60/30/cycle")
    args = parser.parse_args(argv)
    limit = None
    if args.limit:
        videos, window, block_for, *style = args.limit.split("/")
        limit = Limit(int(videos), float(window), float(block_for), *style)
    args.ca_out.mkdir(parents=True, exist_ok=True)
    stopped = threading.Event()

    def stop(_signal: int, _frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    addresses = [address.strip() for address in args.addresses.split(",") if address.strip()]
    with FakeYouTube.start(
        addresses,
        args.port,
        client_addresses=[address.strip() for address in args.client_addresses.split(",") if address.strip()],
        latency=args.latency,
        limit=limit,
        control_port=args.control_port,
        ca_dir=args.ca_out,
    ) as server:
        ready = {"ca_bundle": server.ca_bundle, "control_url": server.control_url}
        print(json.dumps(ready | {"addresses": list(server.addresses), "port": server.port}), flush=True)
        stopped.wait()


if __name__ == "__main__":
    main()
