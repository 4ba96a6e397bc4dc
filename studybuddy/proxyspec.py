"""The proxies a user gives (`--proxy`, `--proxy-rotating`, `--proxy-file`), parsed into `ProxySpec`s.

A proxy is `SCHEME://[USER:PASSWORD@]HOST:PORT` with one of four schemes:

    socks5h   SOCKS5, host names resolved by the proxy (no DNS leak)
    socks5    SOCKS5, host names resolved on this machine: the local resolver sees every name (a DNS leak;
              `egress.proxies.dns_leak_warning` says so)
    http      HTTP proxy: HTTPS goes through a CONNECT tunnel that names the host, so the proxy resolves it
    https     the same over TLS to the proxy itself

A rotating proxy (one URL whose exit IP changes per connection or session, e.g. a provider's `-rotate`
user name) is marked `rotating`. A proxy file has one proxy a line, `#` comments and blank lines; a line may
end with the word `rotating`. A bad line is reported with its file and line number (a `text.BadInput`) and
the other proxies still run. Credentials never appear in a message: every message uses
`ProxySpec.redacted` or `redact_proxy_text`. Checking and tunnelling live in `egress.proxies`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from studybuddy.errors import InputError
from studybuddy.text import BadInput, file_lines

__all__ = [
    "SCHEMES",
    "ProxyList",
    "ProxySpec",
    "egress_key",
    "is_proxy_key",
    "load_proxies",
    "parse_proxy",
    "redact_proxy_text",
]

KEY_PREFIX = "proxy:"


SCHEMES = ("socks5h", "socks5", "http", "https")


ROTATING_WORD = "rotating"


_FORM = "expected SCHEME://[USER:PASSWORD@]HOST:PORT with scheme socks5h, socks5, http or https"


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


def egress_key(spec: ProxySpec) -> str:
    """The proxy's identity in the limiter, the reputation and the archive: its URL without a password."""
    return KEY_PREFIX + spec.redacted().replace(":***@", "@")


def is_proxy_key(key: str) -> bool:
    """Whether a reputation key names a proxy (else it is a Tor exit's fingerprint)."""
    return key.startswith(KEY_PREFIX)
