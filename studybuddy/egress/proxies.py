"""Checking the user's proxies before a run uses them, and tunnels through them (parsing is `proxyspec`).

`check_proxy` opens a tunnel to www.youtube.com through a proxy without sending a byte through it, which
tells apart a proxy that refuses the connection, one that refuses the credentials and one that cannot
reach YouTube; `usable_proxies` drops the ones that fail, with a warning each. `exit_ip` asks an echo
service which address a proxy's traffic leaves from (`doctor`). Credentials never appear in a message:
every message uses `ProxySpec.redacted`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import cast
from urllib.parse import urlsplit

from studybuddy.proxyspec import ProxySpec

__all__ = [
    "ProxyCheckError",
    "check_proxy",
    "dns_leak_warning",
    "exit_ip",
    "open_tunnel",
    "usable_proxies",
]


CHECK_TARGET = ("www.youtube.com", 443)
CHECK_TIMEOUT_S = 15.0
_MAX_CONNECT_ANSWER = 16 * 1024  # the status line and headers of a CONNECT answer
_MAX_CHECKS_AT_ONCE = 8


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
