"""A fake PO token provider speaking the bgutil HTTP API, and the tokens it makes.

``GET /ping`` answers ``{"server_uptime": s, "version": V}`` (V: the installed plugin's version, so the
plugin sees a matching server); ``POST /get_pot`` takes the plugin's JSON (``content_binding``, ``proxy``,
``innertube_context``, ...) and answers ``{"poToken": T, "contentBinding": B, "expiresAt": ...}``. The
token is base64url of a fixed prefix and the content binding (for subtitles: the video id), so the fake
YouTube can tell a token made for this video by this provider (``token_binding``) from anything else.

What was asked is kept in ``requests`` (the proxy URL the plugin sends is replaced by whether one came:
it holds the worker's credentials).
"""

from __future__ import annotations

import base64
import binascii
import importlib.metadata
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote

TOKEN_PREFIX = b"study-buddy-fake-pot:"


def make_token(binding: str) -> str:
    return base64.urlsafe_b64encode(TOKEN_PREFIX + binding.encode()).decode()


def token_binding(token: str) -> str | None:
    """The content binding a token of this provider was made for, or None for any other text."""
    text = unquote(token)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw.removeprefix(TOKEN_PREFIX).decode(errors="replace") if raw.startswith(TOKEN_PREFIX) else None


def plugin_version() -> str:
    try:
        return importlib.metadata.version("bgutil-ytdlp-pot-provider")
    except importlib.metadata.PackageNotFoundError:
        return "2.0.2"


@dataclass
class PotRequest:
    content_binding: str | None
    client: str | None
    with_proxy: bool


@dataclass
class FakePotProvider:
    """Serves on 127.0.0.1 (a free port: ``url``) until ``stop``."""

    pings: int = 0
    requests: list[PotRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                if self.path != "/ping":
                    self._send(404, {"error": "not found"})
                    return
                with provider._lock:
                    provider.pings += 1
                uptime = round(time.monotonic() - provider._started, 3)
                self._send(200, {"server_uptime": uptime, "version": plugin_version()})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path != "/get_pot":
                    self._send(404, {"error": "not found"})
                    return
                try:
                    data = json.loads(body or b"{}")
                except ValueError:
                    self._send(400, {"error": "body is not JSON"})
                    return
                binding = data.get("content_binding")
                client = ((data.get("innertube_context") or {}).get("client") or {}).get("clientName")
                with provider._lock:
                    provider.requests.append(PotRequest(binding, client, bool(data.get("proxy"))))
                if not isinstance(binding, str) or not binding:
                    self._send(200, {"error": "no content binding"})
                    return
                expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 6 * 3600))
                self._send(
                    200, {"poToken": make_token(binding), "contentBinding": binding, "expiresAt": expires}
                )

            def _send(self, status: int, data: dict[str, Any]) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def bindings(self) -> list[str | None]:
        with self._lock:
            return [request.content_binding for request in self.requests]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakePotProvider:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
