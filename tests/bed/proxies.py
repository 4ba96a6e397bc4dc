"""Fake proxies of the test bed: SOCKS5 and HTTP(S) CONNECT on loopback, each leaving from its own source
address, and a rotating one whose source address changes with every connection; plus an IP echo.

A proxy resolves host names only from its own ``hosts`` map (never the system resolver) and connects only
to 127.0.0.0/8: anything else is refused the way real proxies refuse (SOCKS reply 0x02 / HTTP 403), so no
test traffic can leave the machine. Its outgoing connections are bound to its ``source`` address
(127.0.0.21, ...), so a server sees each proxy as its own client IP (``IpEcho``, and the fake YouTube's
proxy listener, which tells clients apart by their address).

- ``kind="socks5"``: SOCKS5 (RFC 1928) CONNECT with IPv4 or domain addresses; user name and password
  (RFC 1929) when ``credentials`` are set, else no authentication.
- ``kind="http"`` / ``"https"``: ``CONNECT host:port`` tunnels and plain absolute-URI requests for
  ``http://`` URLs (forwarded with ``Connection: close``); ``Proxy-Authorization: Basic`` checked when
  ``credentials`` are set (407 otherwise); ``https`` speaks TLS to the client first (certificate from
  ``tls_cert``).

Counts (thread-safe): ``connections``, ``tunnels`` by source address, ``auth_failures``, ``refused``.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import itertools
import selectors
import socket
import ssl
import struct
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlsplit

import trustme

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
IDLE_TIMEOUT = 30.0
_MAX_HEADER = 64 * 1024


class _Refused(Exception):
    """A request the proxy will not carry out (unknown name, or an address outside loopback)."""


class TcpServer:
    """A listening socket on ``address`` (free port) served by a thread; each connection goes to
    ``handle(client, peer)`` in a thread of its own and is closed afterwards."""

    def __init__(self, address: str, name: str) -> None:
        self._server = socket.create_server((address, 0))
        self._server.settimeout(0.2)
        self.address = address
        self.port = self._server.getsockname()[1]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._server.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def handle(self, client: socket.socket, peer: str) -> None:
        raise NotImplementedError

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, address = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client, address[0]), daemon=True).start()

    def _serve(self, client: socket.socket, peer: str) -> None:
        client.settimeout(IDLE_TIMEOUT)
        with client, contextlib.suppress(OSError, ValueError):  # a client that left or spoke nonsense
            self.handle(client, peer)


class FakeProxy(TcpServer):
    """One fake proxy; ``start`` it, ``stop`` it (or use it as a context manager)."""

    def __init__(
        self,
        kind: str,
        sources: Sequence[str],
        hosts: Mapping[str, str] | None = None,
        *,
        credentials: tuple[str, str] | None = None,
        tls_cert: trustme.LeafCert | None = None,
        listen: str = "127.0.0.1",
    ) -> None:
        """``sources``: one address, or several for a rotating proxy (one per connection, in turn)."""
        if kind not in ("socks5", "http", "https"):
            raise ValueError(f"unknown proxy kind {kind!r}")
        if kind == "https" and tls_cert is None:
            raise ValueError("an https proxy needs tls_cert")
        super().__init__(listen, f"fake-{kind}-proxy")
        self.kind = kind
        self.sources = tuple(sources)
        self.hosts = dict(hosts or {})
        self.credentials = credentials
        self.connections = 0
        self.tunnels: Counter[str] = Counter()
        self.auth_failures = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._next_source = itertools.cycle(self.sources)
        self._context: ssl.SSLContext | None = None
        if tls_cert is not None:
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls_cert.configure_cert(self._context)

    @property
    def rotating(self) -> bool:
        return len(self.sources) > 1

    def url(self, *, credentials: tuple[str, str] | None = None, scheme: str | None = None) -> str:
        """The proxy URL (with this proxy's credentials, or the ones given, e.g. wrong ones)."""
        user = credentials or self.credentials
        auth = f"{quote(user[0], safe='')}:{quote(user[1], safe='')}@" if user else ""
        chosen = scheme or ("socks5h" if self.kind == "socks5" else self.kind)
        return f"{chosen}://{auth}{self.address}:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.connections = self.auth_failures = self.refused = 0
            self.tunnels.clear()

    # -- serving ---------------------------------------------------------------------------------------

    def handle(self, client: socket.socket, peer: str) -> None:
        with self._lock:
            self.connections += 1
        if self._context is not None:
            client = self._context.wrap_socket(client, server_side=True)
        if self.kind == "socks5":
            self._socks5(client)
        else:
            self._http(client)

    def _open(self, host: str, port: int) -> socket.socket:
        """Connect from the next source address to `host` (resolved by `hosts`), loopback only."""
        address = self.hosts.get(host.lower(), host)
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise _Refused(f"unknown host {host}") from None
        if ip not in LOOPBACK:
            raise _Refused(f"{ip} is outside 127.0.0.0/8")
        with self._lock:
            source = next(self._next_source)
        upstream = socket.create_connection((str(ip), port), timeout=IDLE_TIMEOUT, source_address=(source, 0))
        with self._lock:
            self.tunnels[source] += 1
        return upstream

    def _count_refusal(self, auth: bool) -> None:
        with self._lock:
            if auth:
                self.auth_failures += 1
            else:
                self.refused += 1

    # -- SOCKS5 ----------------------------------------------------------------------------------------

    def _socks5(self, client: socket.socket) -> None:
        version, count = _read(client, 2)
        methods = _read(client, count)
        wanted = 2 if self.credentials else 0
        if version != 5 or wanted not in methods:
            client.sendall(b"\x05\xff")
            self._count_refusal(auth=bool(self.credentials))
            return
        client.sendall(bytes([5, wanted]))
        if self.credentials and not self._socks5_login(client):
            return
        _, command, _, address_type = _read(client, 4)
        if address_type == 1:
            host = socket.inet_ntoa(_read(client, 4))
        elif address_type == 3:
            host = _read(client, _read(client, 1)[0]).decode("idna")
        else:
            client.sendall(_socks5_reply(8))  # address type not supported (IPv6 is never needed here)
            return
        (port,) = struct.unpack("!H", _read(client, 2))
        if command != 1:
            client.sendall(_socks5_reply(7))
            return
        try:
            upstream = self._open(host, port)
        except _Refused:
            self._count_refusal(auth=False)
            client.sendall(_socks5_reply(2))
            return
        except OSError:
            client.sendall(_socks5_reply(5))
            return
        client.sendall(_socks5_reply(0))
        _relay(client, upstream)

    def _socks5_login(self, client: socket.socket) -> bool:
        assert self.credentials is not None
        _version, length = _read(client, 2)
        user = _read(client, length)
        password = _read(client, _read(client, 1)[0])
        if (user.decode(), password.decode()) != self.credentials:
            client.sendall(b"\x01\x01")
            self._count_refusal(auth=True)
            return False
        client.sendall(b"\x01\x00")
        return True

    # -- HTTP ------------------------------------------------------------------------------------------

    def _http(self, client: socket.socket) -> None:
        head, rest = _read_head(client)
        request_line, *header_lines = head.split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines)
        }
        if self.credentials and not self._authorised(headers.get("proxy-authorization", "")):
            self._count_refusal(auth=True)
            client.sendall(
                b'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="fake"\r\n'
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            self._tunnel(client, host.strip("[]"), int(port), rest)
        else:
            self._forward(client, method, target, header_lines, rest)

    def _authorised(self, header: str) -> bool:
        assert self.credentials is not None
        scheme, _, token = header.partition(" ")
        expected = base64.b64encode(":".join(self.credentials).encode()).decode()
        return scheme.lower() == "basic" and token.strip() == expected

    def _tunnel(self, client: socket.socket, host: str, port: int, rest: bytes) -> None:
        try:
            upstream = self._open(host, port)
        except _Refused:
            self._count_refusal(auth=False)
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if rest:
            upstream.sendall(rest)
        _relay(client, upstream)

    def _forward(
        self, client: socket.socket, method: str, target: str, header_lines: list[str], rest: bytes
    ) -> None:
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        try:
            upstream = self._open(parts.hostname, parts.port or 80)
        except (_Refused, OSError):
            self._count_refusal(auth=False)
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        kept = [
            line
            for line in header_lines
            if line.partition(":")[0].strip().lower() not in ("proxy-authorization", "connection")
        ]
        path = parts.path or "/"
        path += f"?{parts.query}" if parts.query else ""
        head = "\r\n".join([f"{method} {path} HTTP/1.1", *kept, "Connection: close", "", ""])
        upstream.sendall(head.encode() + rest)
        _relay(client, upstream)


def _socks5_reply(code: int) -> bytes:
    return bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0])


def _read(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("client closed the connection")
        data += chunk
    return data


def _read_head(sock: socket.socket) -> tuple[str, bytes]:
    """The request head (without the blank line) and whatever came after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > _MAX_HEADER:
            raise ValueError("request head too long")
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("client closed the connection")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until either side closes or stays idle for IDLE_TIMEOUT."""
    with upstream, selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        while True:
            events = selector.select(timeout=IDLE_TIMEOUT)
            if not events:
                return
            for key, _ in events:
                source: Any = key.fileobj
                try:
                    data = source.recv(65536)
                except ssl.SSLWantReadError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                while isinstance(source, ssl.SSLSocket) and source.pending():
                    data += source.recv(source.pending())
                key.data.sendall(data)


class IpEcho(TcpServer):
    """Plain HTTP on ``address``: every request is answered with the client's IP address (text/plain)."""

    def __init__(self, address: str = "127.0.0.10") -> None:
        super().__init__(address, "ip-echo")
        self.url = f"http://{address}:{self.port}/"
        self.seen: list[str] = []

    def handle(self, client: socket.socket, peer: str) -> None:
        _read_head(client)
        self.seen.append(peer)
        body = peer.encode()
        client.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )


@dataclass
class ProxyBed:
    """The bed's proxies: socks5h (127.0.0.21), http with credentials (.22), https (.23) and a rotating
    socks5h one with credentials (127.0.0.31-.34), all resolving YouTube's names to ``youtube_address``."""

    socks: FakeProxy
    http: FakeProxy
    https: FakeProxy
    rotating: FakeProxy
    ca: trustme.CA

    @classmethod
    def start(cls, youtube_address: str, names: Iterable[str], ca: trustme.CA | None = None) -> ProxyBed:
        ca = ca or trustme.CA()
        hosts = dict.fromkeys(names, youtube_address)
        proxies = cls(
            socks=FakeProxy("socks5", ["127.0.0.21"], hosts),
            http=FakeProxy("http", ["127.0.0.22"], hosts, credentials=("alice", "s3cret:pass@word")),
            https=FakeProxy("https", ["127.0.0.23"], hosts, tls_cert=ca.issue_cert("127.0.0.1")),
            rotating=FakeProxy(
                "socks5",
                [f"127.0.0.{n}" for n in range(31, 35)],
                hosts,
                credentials=("bob-rotate", "r0tate"),
            ),
            ca=ca,
        )
        for proxy in proxies.all:
            proxy.start()
        return proxies

    @property
    def all(self) -> tuple[FakeProxy, ...]:
        return (self.socks, self.http, self.https, self.rotating)

    def reset(self) -> None:
        for proxy in self.all:
            proxy.reset()

    def stop(self) -> None:
        for proxy in self.all:
            proxy.stop()
