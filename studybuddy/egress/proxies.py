"""Proxies the user gives (`--proxy`, `--proxy-rotating`, `--proxy-file`): parsed, shown without their
password, turned into `requests` proxy settings, and checked before a run uses them.

A proxy is `SCHEME://[USER:PASSWORD@]HOST:PORT` with one of four schemes:

    socks5h   SOCKS5, host names resolved by the proxy (no DNS leak)
    socks5    SOCKS5, host names resolved on this machine: the local resolver sees every name (a DNS leak;
              `dns_leak_warning` says so)
    http      HTTP proxy: HTTPS goes through a CONNECT tunnel that names the host, so the proxy resolves it
    https     the same over TLS to the proxy itself

A rotating proxy (one URL whose exit IP changes per connection or session, e.g. a provider's `-rotate`
user name) is marked `rotating`. A proxy file has one proxy a line, `#` comments and blank lines; a line may
end with the word `rotating`. A bad line is reported with its file and line number (like `inputs`) and the
other proxies still run.

`check_proxy` opens a tunnel to www.youtube.com through a proxy without sending a byte through it, which
tells apart a proxy that refuses the connection, one that refuses the credentials and one that cannot
reach YouTube; `usable_proxies` drops the ones that fail, with a warning each.

Credentials never appear in a message: every message uses `ProxySpec.redacted` or `redact_proxy_text`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import quote, unquote, urlsplit

from studybuddy.errors import InputError
from studybuddy.youtube.inputs import BadInput, file_lines

__all__ = [
    "SCHEMES",
    "ProxyCheckError",
    "ProxyList",
    "ProxySpec",
    "check_proxy",
    "dns_leak_warning",
    "exit_ip",
    "load_proxies",
    "open_tunnel",
    "parse_proxy",
    "redact_proxy_text",
    "usable_proxies",
]

log = logging.getLogger(__name__)

SCHEMES = ("socks5h", "socks5", "http", "https")
CHECK_TARGET = ("www.youtube.com", 443)
CHECK_TIMEOUT_S = 15.0
ROTATING_WORD = "rotating"
_FORM = "expected SCHEME://[USER:PASSWORD@]HOST:PORT with scheme socks5h, socks5, http or https"
_MAX_CONNECT_ANSWER = 16 * 1024  # the status line and headers of a CONNECT answer
_MAX_CHECKS_AT_ONCE = 8


@dataclass(frozen=True, slots=True)
class ProxySpec:
    """One proxy: an egress identity of its own (a rotating one stands for a pool of exit IPs)."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    rotating: bool = False

    @property
    def url(self) -> str:
        """The URL with the credentials, for `requests` and yt-dlp only: never show it (see `redacted`)."""
        auth = ""
        if self.username is not None:
            auth = quote(self.username, safe="")
            if self.password is not None:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        return f"{self.scheme}://{auth}{self._host_port}"

    def redacted(self) -> str:
        """For messages and logs: the user name stays (it tells proxies of one provider apart), never the
        password."""
        user = f"{quote(self.username, safe='')}:***@" if self.username is not None else ""
        return f"{self.scheme}://{user}{self._host_port}"

    @property
    def _host_port(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def resolves_names(self) -> bool:
        """Whether host names reach the proxy (socks5h, and CONNECT of http/https) rather than this
        machine's resolver (plain socks5)."""
        return self.scheme != "socks5"

    def requests_proxies(self) -> dict[str, str]:
        """The `proxies` of a `requests.Session` that sends everything through this proxy."""
        return {"http": self.url, "https": self.url}

    def __str__(self) -> str:
        return self.redacted()


def redact_proxy_text(text: str) -> str:
    """`text` (maybe not a valid URL) with everything between the user name and the last `@` replaced."""
    text = text.strip()
    head, sep, rest = text.partition("://")
    if not sep:
        head, rest = "", text
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return text
    return f"{head}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


def parse_proxy(text: str, *, rotating: bool = False, option: str = "--proxy") -> ProxySpec:
    """A `ProxySpec` from `SCHEME://[USER:PASSWORD@]HOST:PORT`; `InputError` naming the input (without its
    password) when it is malformed, has an unknown scheme or a bad port."""
    try:
        return _parse(text, rotating)
    except _NotAProxy as error:
        raise InputError(f"{option} {redact_proxy_text(text)!r}: {error}") from None


class _NotAProxy(ValueError):
    """Why a text is not a proxy URL."""


def _parse(text: str, rotating: bool) -> ProxySpec:
    candidate = text.strip()
    try:
        parts = urlsplit(candidate)
    except ValueError:  # e.g. an unclosed [IPv6 address
        raise _NotAProxy(f"malformed URL; {_FORM}") from None
    scheme = parts.scheme.lower()
    if "://" not in candidate:
        raise _NotAProxy(f"no scheme; {_FORM}")
    if scheme not in SCHEMES:
        raise _NotAProxy(f"unknown scheme {parts.scheme!r}; {_FORM}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _NotAProxy(f"a proxy URL has no path or query; {_FORM}")
    if not parts.hostname:
        raise _NotAProxy(f"no host; {_FORM}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not port:
        raise _NotAProxy("bad port (expected HOST:PORT with a port from 1 to 65535)")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not username:
        raise _NotAProxy(f"a password without a user name; {_FORM}")
    return ProxySpec(scheme, parts.hostname, port, username or None, password, rotating)


@dataclass(frozen=True, slots=True)
class ProxyList:
    """The proxies of the command line and proxy files, in order, duplicates once; and the bad lines."""

    proxies: tuple[ProxySpec, ...] = ()
    bad: tuple[BadInput, ...] = ()


def load_proxies(
    urls: Sequence[str] = (), rotating: Sequence[str] = (), files: Sequence[Path] = ()
) -> ProxyList:
    """`--proxy` and `--proxy-rotating` values (a bad one raises `InputError`), then each `--proxy-file`
    (a file that cannot be read raises; a bad line is kept in `bad`, naming its file and line)."""
    found = [parse_proxy(url) for url in urls]
    found += [parse_proxy(url, rotating=True, option="--proxy-rotating") for url in rotating]
    bad: list[BadInput] = []
    for path in files:
        for line in file_lines(path):
            if line.text is None:
                bad.append(BadInput(line.source, redact_proxy_text(line.raw), "not valid UTF-8"))
                continue
            words = line.text.split()
            marked = len(words) == 2 and words[1].lower() == ROTATING_WORD
            if len(words) != 1 and not marked:
                reason = f"expected one proxy URL (optionally followed by '{ROTATING_WORD}')"
                bad.append(BadInput(line.source, redact_proxy_text(line.text), reason))
                continue
            try:
                found.append(_parse(words[0], marked))
            except _NotAProxy as error:
                bad.append(BadInput(line.source, redact_proxy_text(words[0]), str(error)))
    unique = {spec.url: spec for spec in reversed(found)}  # the first mention wins
    return ProxyList(tuple(spec for spec in found if unique.get(spec.url) is spec), tuple(bad))


def dns_leak_warning(spec: ProxySpec) -> str | None:
    """One line for a proxy that makes this machine resolve host names (plain `socks5://`), else None."""
    if spec.resolves_names:
        return None
    return (
        f"{spec.redacted()}: DNS leak: with socks5:// this machine resolves every host name (its DNS "
        "resolver sees www.youtube.com); use socks5h:// so the proxy resolves them"
    )


class ProxyCheckError(Exception):
    """Why a proxy cannot be used (one line, no credentials)."""


def check_proxy(
    spec: ProxySpec,
    *,
    target: tuple[str, int] = CHECK_TARGET,
    timeout_s: float = CHECK_TIMEOUT_S,
    ca_bundle: str | None = None,
) -> str | None:
    """None when `spec` accepts the connection and the credentials and opens a tunnel to `target`;
    otherwise the reason, one line. Nothing is sent through the tunnel (YouTube sees a connection only).

    `ca_bundle` is trusted besides the system's CAs for an `https://` proxy's own certificate.
    """
    try:
        open_tunnel(spec, target, timeout_s=timeout_s, ca_bundle=ca_bundle).close()
    except ProxyCheckError as error:
        return str(error)
    return None


def exit_ip(
    spec: ProxySpec, echo_url: str, *, timeout_s: float = CHECK_TIMEOUT_S, ca_bundle: str | None = None
) -> str:
    """The address a server sees `spec`'s traffic come from: `echo_url` (an IP-echo service answering the
    client's address as text, or JSON with an `ip` field) fetched through the proxy itself."""
    parts = urlsplit(echo_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProxyCheckError(f"IP echo URL {echo_url!r}: expected http(s)://HOST[:PORT]/PATH")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    sock = open_tunnel(spec, (parts.hostname, port), timeout_s=timeout_s, ca_bundle=ca_bundle)
    try:
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=ca_bundle)
            sock = context.wrap_socket(sock, server_hostname=parts.hostname)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {parts.netloc}\r\nAccept: */*\r\n\r\n".encode())
        answer = _read_until_closed(sock)
    except OSError as error:
        raise ProxyCheckError(f"IP echo through the proxy failed ({error.strerror or error})") from None
    finally:
        sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] != b"200":
        raise ProxyCheckError(f"IP echo through the proxy answered {head[:60].decode(errors='replace')!r}")
    text = body.decode("utf-8", errors="replace").strip()
    with contextlib.suppress(ValueError, AttributeError):
        text = str(json.loads(text).get("ip", text))
    return text[:64]


def open_tunnel(
    spec: ProxySpec,
    target: tuple[str, int],
    *,
    timeout_s: float = CHECK_TIMEOUT_S,
    ca_bundle: str | None = None,
) -> socket.socket:
    """A connected socket to `target` through `spec` (SOCKS5, or HTTP CONNECT, over TLS for `https://`);
    `ProxyCheckError` with the reason when the proxy refuses or cannot reach `target`."""
    if spec.scheme in ("socks5", "socks5h"):
        return _socks_tunnel(spec, target, timeout_s)
    return _connect_tunnel(spec, target, timeout_s, ca_bundle)


def usable_proxies(
    specs: Iterable[ProxySpec],
    warn: Callable[[str], None],
    *,
    check: Callable[[ProxySpec], str | None] = check_proxy,
) -> tuple[ProxySpec, ...]:
    """The proxies that pass `check` (all checked at once), in order; each one dropped gets a warning."""
    candidates = list(specs)
    if not candidates:
        return ()
    with ThreadPoolExecutor(max_workers=min(_MAX_CHECKS_AT_ONCE, len(candidates))) as pool:
        reasons = list(pool.map(check, candidates))
    kept = []
    for spec, reason in zip(candidates, reasons, strict=True):
        if reason is None:
            kept.append(spec)
        else:
            warn(f"{spec.redacted()}: {reason}; this proxy is dropped")
    return tuple(kept)


def _socks_tunnel(spec: ProxySpec, target: tuple[str, int], timeout_s: float) -> socket.socket:
    import socks

    sock = socks.socksocket()
    sock.set_proxy(
        socks.SOCKS5,
        spec.host,
        spec.port,
        rdns=spec.resolves_names,
        username=spec.username,
        password=spec.password,
    )
    sock.settimeout(timeout_s)
    try:
        sock.connect(target)
    except OSError as error:  # PySocks' errors are OSErrors too
        sock.close()
        raise ProxyCheckError(_socks_reason(error, target[0])) from None
    return cast(socket.socket, sock)


def _socks_reason(error: OSError, host: str) -> str:
    import socks

    if isinstance(error, socks.ProxyConnectionError):
        return _connection_reason(error.socket_err)
    if not isinstance(error, socks.ProxyError):
        return _connection_reason(error)
    inner = error.socket_err  # PySocks wraps a failed login in a GeneralProxyError
    if isinstance(error, socks.SOCKS5AuthError) or isinstance(inner, socks.SOCKS5AuthError):
        return "refused the credentials"
    detail = inner.msg if isinstance(inner, socks.ProxyError) else error.msg
    return f"could not open a tunnel to {host} ({detail})"


def _connect_tunnel(
    spec: ProxySpec, target: tuple[str, int], timeout_s: float, ca_bundle: str | None
) -> socket.socket:
    """An HTTP CONNECT tunnel to `target` (over TLS to the proxy for `https://`)."""
    host, port = target
    headers = [f"CONNECT {host}:{port} HTTP/1.1", f"Host: {host}:{port}"]
    if spec.username is not None:
        token = base64.b64encode(f"{spec.username}:{spec.password or ''}".encode()).decode()
        headers.append(f"Proxy-Authorization: Basic {token}")
    request = ("\r\n".join(headers) + "\r\n\r\n").encode()
    sock: socket.socket | None = None
    try:
        sock = socket.create_connection((spec.host, spec.port), timeout=timeout_s)
        if spec.scheme == "https":
            context = ssl.create_default_context(cafile=ca_bundle)
            sock = context.wrap_socket(sock, server_hostname=spec.host)
        status = _connect_status(sock, request)
    except ssl.SSLError as error:
        _close(sock)
        raise ProxyCheckError(f"TLS to the proxy failed ({error.reason or error})") from None
    except OSError as error:
        _close(sock)
        raise ProxyCheckError(_connection_reason(error)) from None
    except ProxyCheckError:
        _close(sock)
        raise
    if status == 407:
        sock.close()
        raise ProxyCheckError("refused the credentials (HTTP 407)")
    if not 200 <= status < 300:
        sock.close()
        raise ProxyCheckError(f"could not open a tunnel to {host} (HTTP {status})")
    return sock


def _close(sock: socket.socket | None) -> None:
    if sock is not None:
        sock.close()


def _connect_status(sock: socket.socket, request: bytes) -> int:
    """Send a CONNECT and read its answer's head, byte by byte: what follows belongs to the tunnel."""
    sock.sendall(request)
    answer = b""
    while not answer.endswith(b"\r\n\r\n") and len(answer) < _MAX_CONNECT_ANSWER:
        chunk = sock.recv(1)
        if not chunk:
            break
        answer += chunk
    status_line = answer.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/") or not status_line[1].isdigit():
        raise ProxyCheckError("does not speak HTTP CONNECT")
    return int(status_line[1])


def _read_until_closed(sock: socket.socket) -> bytes:
    answer = b""
    while len(answer) < _MAX_CONNECT_ANSWER:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer


def _connection_reason(error: BaseException | None) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "refused the connection"
    if isinstance(error, TimeoutError):
        return "did not answer in time"
    if isinstance(error, socket.gaierror):
        return "its host name does not resolve"
    if isinstance(error, OSError):
        return f"cannot be reached ({error.strerror or type(error).__name__})"
    return "cannot be reached"
