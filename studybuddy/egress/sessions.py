"""HTTP sessions for workers: one `requests.Session` per worker identity, isolated by SOCKS credentials.

Tor's `IsolateSOCKSAuth` puts streams with different SOCKS username/password on different circuits, so a
worker's identity *is* its credentials: `sb-<run>-w<worker>-g<generation>` plus a random password (the
playlist lister's: `sb-<run>-list-g<generation>`). Renewing
a worker's circuit means a new generation and a new session (a kept-alive socket would stay on the old
circuit).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from studybuddy.errors import InputError

if TYPE_CHECKING:
    from studybuddy.proxyspec import ProxySpec

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
DEFAULT_TIMEOUT = (20.0, 60.0)  # (connect, read) seconds: Tor circuits can be slow to build
LISTER = -1  # the worker number of the playlist and channel lister: never a pool worker's (0, 1, ...)


@dataclass(frozen=True, slots=True)
class ProxyEndpoint:
    """Tor's SOCKS5 port (`--tor-socks`), used with remote DNS (`socks5h`): names resolve at the exit."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ProxyEndpoint:
        """Parse `socks5h://HOST:PORT`, `socks5://HOST:PORT` or `HOST:PORT`."""
        candidate = text.strip()
        if "://" not in candidate:
            candidate = f"socks5h://{candidate}"
        parts = urlsplit(candidate)
        if parts.scheme not in ("socks5h", "socks5"):
            raise InputError(f"--tor-socks {text!r}: expected HOST:PORT of Tor's SOCKS port")
        if parts.username or parts.password:
            raise InputError(f"--tor-socks {text!r}: leave out credentials, every worker gets its own")
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise InputError(f"--tor-socks {text!r}: expected HOST:PORT of Tor's SOCKS port")
        return cls(parts.hostname, port)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Identity:
    """The SOCKS credentials of one worker in one generation: its own Tor circuit."""

    run_id: str
    worker: int
    generation: int
    password: str

    @classmethod
    def first(cls, run_id: str, worker: int) -> Identity:
        return cls(run_id, worker, 0, secrets.token_hex(8))

    def next(self) -> Identity:
        """The next generation: new username and password, so Tor builds a new circuit."""
        return Identity(self.run_id, self.worker, self.generation + 1, secrets.token_hex(8))

    @property
    def username(self) -> str:
        who = "list" if self.worker == LISTER else f"w{self.worker}"
        return f"sb-{self.run_id}-{who}-g{self.generation}"

    def proxy_url(self, endpoint: ProxyEndpoint) -> str:
        user, password = quote(self.username, safe=""), quote(self.password, safe="")
        return f"socks5h://{user}:{password}@{endpoint.host}:{endpoint.port}"

    def __repr__(self) -> str:  # never show the password
        return f"Identity({self.username})"


def new_run_id() -> str:
    """A short id unique to this run, so two runs on one Tor never share circuits."""
    return secrets.token_hex(4)


class _EgressAdapter(HTTPAdapter):
    """Applies a default timeout (youtube-transcript-api calls the session without one) and remembers the
    local address of the socket that carried the latest answer: through Tor, that names the stream, hence
    the exit, that YouTube answered (see `TorController.exit_of_source`)."""

    last_source: tuple[str, int] | None = None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = DEFAULT_TIMEOUT
        self.last_source = None
        response = super().send(request, **kwargs)
        self.last_source = _local_address(response)
        return response


def _local_address(response: requests.Response) -> tuple[str, int] | None:
    """Where the answer's connection starts on this machine (its body is not read yet, so it is held). TLS
    inside a TLS tunnel (an https:// proxy) wraps the socket in an object without an address: use the
    socket under it."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    while sock is not None and not hasattr(sock, "getsockname"):
        sock = getattr(sock, "socket", None)
    try:
        host, port = sock.getsockname()[:2] if sock is not None else (None, None)
    except OSError:
        return None
    return (host, port) if isinstance(host, str) and isinstance(port, int) else None


def last_source(session: requests.Session) -> tuple[str, int] | None:
    """The local address of the connection that carried `session`'s latest answer (None: no answer)."""
    adapter = session.get_adapter("https://")
    return adapter.last_source if isinstance(adapter, _EgressAdapter) else None


def new_session(
    *,
    identity: Identity | None = None,
    proxy: ProxyEndpoint | None = None,
    ca_bundle: str | None = None,
    egress: ProxySpec | None = None,
) -> requests.Session:
    """A session that ignores proxy variables and goes through Tor's `proxy` with `identity`'s credentials,
    or through the user's proxy `egress` (with its own credentials)."""
    session = requests.Session()
    session.trust_env = False  # a stray HTTPS_PROXY must never bypass Tor
    session.headers["User-Agent"] = USER_AGENT
    adapter = _EgressAdapter(pool_connections=4, pool_maxsize=4)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if ca_bundle:
        session.verify = ca_bundle
    if proxy is not None:
        if identity is None or egress is not None:
            raise ValueError("a session through Tor needs an identity, and no other proxy")
        url = identity.proxy_url(proxy)
        session.proxies = {"http": url, "https": url}
    elif egress is not None:
        session.proxies = egress.requests_proxies()
    return session
