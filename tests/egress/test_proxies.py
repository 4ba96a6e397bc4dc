"""Proxies: parsing and its one-line errors, proxy files, redaction, requests settings, DNS-leak warnings,
and the check against real fake proxies on loopback (SOCKS5, HTTP and HTTPS CONNECT, wrong credentials)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trustme
from hypothesis import given
from hypothesis import strategies as st

from studybuddy.egress.proxies import check_proxy, dns_leak_warning, exit_ip, usable_proxies
from studybuddy.errors import InputError
from studybuddy.proxyspec import ProxySpec, load_proxies, parse_proxy, redact_proxy_text
from tests.bed.proxies import FakeProxy, IpEcho

ECHO_NAME = "echo.test"


def test_every_scheme_with_and_without_credentials() -> None:
    assert parse_proxy("socks5h://127.0.0.1:1080") == ProxySpec("socks5h", "127.0.0.1", 1080)
    spec = parse_proxy("HTTP://user%40x:p%3Ass@proxy.example:3128/", rotating=True)
    assert (spec.scheme, spec.host, spec.port, spec.username, spec.password, spec.rotating) == (
        "http",
        "proxy.example",
        3128,
        "user@x",
        "p:ss",
        True,
    )
    assert spec.url == "http://user%40x:p%3Ass@proxy.example:3128"
    assert parse_proxy("https://[::1]:8443").url == "https://[::1]:8443"
    assert parse_proxy("socks5://u@h:1").username == "u"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("127.0.0.1:1080", "no scheme"),
        ("socks4://127.0.0.1:1080", "unknown scheme 'socks4'"),
        ("ftp://h:21", "unknown scheme 'ftp'"),
        ("http://proxy.example", "bad port"),
        ("http://proxy.example:99999", "bad port"),
        ("http://proxy.example:port", "bad port"),
        ("http://:8080", "no host"),
        ("http://proxy.example:8080/path", "no path or query"),
        ("http://[::1:8080", "malformed URL"),
        ("http://:pw@proxy.example:8080", "a password without a user name"),
    ],
)
def test_bad_proxies_get_one_line_naming_them(text: str, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_proxy(text, option="--proxy")
    message = str(caught.value)
    assert message.startswith(f"--proxy {text!r}: ") or message.startswith("--proxy '")
    assert reason in message and "\n" not in message


def test_errors_and_display_never_show_the_password() -> None:
    with pytest.raises(InputError) as caught:
        parse_proxy("http://alice:pa@ss/word@proxy.example:99999")
    assert "pa@ss" not in str(caught.value) and "alice:***@proxy.example" in str(caught.value)
    spec = parse_proxy("http://alice:hunter2@proxy.example:3128")
    assert spec.redacted() == "http://alice:***@proxy.example:3128" == str(spec)
    assert "hunter2" not in repr(spec) and "hunter2" not in spec.redacted()


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=30))
def test_redaction_hides_any_password(password: str) -> None:
    shown = redact_proxy_text(f"socks5h://user:{password}@host:1")
    assert shown == "socks5h://user:***@host:1"


def test_requests_settings_and_the_dns_leak_warning() -> None:
    for scheme in ("socks5h", "http", "https"):
        spec = parse_proxy(f"{scheme}://u:p@h:1")
        assert spec.requests_proxies() == {"http": spec.url, "https": spec.url}
        assert dns_leak_warning(spec) is None
    leaky = parse_proxy("socks5://u:secret@h:1080")
    warning = dns_leak_warning(leaky)
    assert warning is not None and "DNS leak" in warning and "socks5h://" in warning
    assert "secret" not in warning and "socks5://u:***@h:1080" in warning


def test_proxy_file_bad_lines_are_named_and_the_others_still_run(tmp_path: Path) -> None:
    path = tmp_path / "proxies.txt"
    path.write_bytes(
        b"# residential pool\n"
        b"socks5h://127.0.0.1:1080\n"
        b"\n"
        b"http://alice:hunter2@proxy.example:99999   # a typo\n"
        b"http://bob:pw@p.example:80 rotating\n"
        b"socks4://h:1\n"
        b"http://h:1 two words\n"
        b"\xff\xfe\n"
        b"socks5h://127.0.0.1:1080\n"
    )
    loaded = load_proxies(["http://c:d@cli.example:8080"], ["socks5h://r:s@rot.example:1"], [path])
    assert [spec.redacted() for spec in loaded.proxies] == [
        "http://c:***@cli.example:8080",
        "socks5h://r:***@rot.example:1",
        "socks5h://127.0.0.1:1080",
        "http://bob:***@p.example:80",
    ]
    assert [spec.rotating for spec in loaded.proxies] == [False, True, False, True]
    messages = [bad.message for bad in loaded.bad]
    assert [bad.source for bad in loaded.bad] == [f"{path}:{n}" for n in (4, 6, 7, 8)]
    assert "bad port" in messages[0] and "hunter2" not in " ".join(messages)
    assert "unknown scheme 'socks4'" in messages[1]
    assert "expected one proxy URL" in messages[2]
    assert "not valid UTF-8" in messages[3]


def test_an_unreadable_proxy_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.txt: no such file"):
        load_proxies(files=[tmp_path / "missing.txt"])


# -- the check, against fake proxies on loopback --------------------------------------------------------


@pytest.fixture
def echo() -> Iterator[IpEcho]:
    with IpEcho() as server:
        yield server


def fake(kind: str, echo: IpEcho, **options: object) -> FakeProxy:
    return FakeProxy(kind, ["127.0.0.21"], {ECHO_NAME: echo.address}, **options)  # type: ignore[arg-type]


def test_a_working_socks_proxy_passes_and_sends_nothing_through(echo: IpEcho) -> None:
    with fake("socks5", echo, credentials=("u", "p")) as proxy:
        spec = parse_proxy(proxy.url())
        assert check_proxy(spec, target=(ECHO_NAME, echo.port), timeout_s=5) is None
        assert proxy.tunnels == {"127.0.0.21": 1}
        assert echo.seen == []  # a tunnel was opened, no request sent
        assert exit_ip(spec, f"http://{ECHO_NAME}:{echo.port}/ip", timeout_s=5) == "127.0.0.21"
        assert echo.seen == ["127.0.0.21"]


def test_wrong_credentials_and_refused_connections_are_told_apart(echo: IpEcho) -> None:
    target = (ECHO_NAME, echo.port)
    with (
        fake("socks5", echo, credentials=("u", "p")) as socks_proxy,
        fake("http", echo, credentials=("u", "p")) as http_proxy,
    ):
        wrong_socks = parse_proxy(socks_proxy.url(credentials=("u", "nope")))
        wrong_http = parse_proxy(http_proxy.url(credentials=("u", "nope")))
        assert check_proxy(wrong_socks, target=target, timeout_s=5) == "refused the credentials"
        assert check_proxy(wrong_http, target=target, timeout_s=5) == "refused the credentials (HTTP 407)"
        assert check_proxy(parse_proxy(http_proxy.url()), target=target, timeout_s=5) is None
        outside = check_proxy(parse_proxy(http_proxy.url()), target=("10.1.2.3", 443), timeout_s=5)
        assert outside == "could not open a tunnel to 10.1.2.3 (HTTP 403)"
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    for scheme in ("socks5h", "http"):
        spec = parse_proxy(f"{scheme}://127.0.0.1:{port}")
        assert check_proxy(spec, target=target, timeout_s=5) == "refused the connection"


def test_an_https_proxy_is_checked_over_tls_with_the_ca_bundle(echo: IpEcho, tmp_path: Path) -> None:
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with fake("https", echo, tls_cert=ca.issue_cert("127.0.0.1")) as proxy:
        spec = parse_proxy(proxy.url())
        assert check_proxy(spec, target=(ECHO_NAME, echo.port), timeout_s=5, ca_bundle=str(bundle)) is None
        untrusted = check_proxy(spec, target=(ECHO_NAME, echo.port), timeout_s=5)
        assert untrusted is not None and untrusted.startswith("TLS to the proxy failed")
        assert exit_ip(spec, echo.url, timeout_s=5, ca_bundle=str(bundle)) == "127.0.0.21"


def test_usable_proxies_drop_the_failing_ones_with_a_warning_each() -> None:
    good, bad = parse_proxy("socks5h://127.0.0.1:1"), parse_proxy("http://u:secret@127.0.0.1:2")
    warnings: list[str] = []
    kept = usable_proxies([good, bad], warnings.append, check=lambda spec: None if spec is good else "nope")
    assert kept == (good,)
    assert warnings == ["http://u:***@127.0.0.1:2: nope; this proxy is dropped"]
    assert usable_proxies([], warnings.append) == ()


def test_the_rotating_proxy_leaves_from_another_address_each_connection(echo: IpEcho) -> None:
    sources = [f"127.0.0.{n}" for n in range(31, 35)]
    with FakeProxy("socks5", sources, {ECHO_NAME: echo.address}) as proxy:
        session = requests.Session()
        session.trust_env = False
        spec = parse_proxy(proxy.url(), rotating=True)
        url = echo.url.replace(echo.address, ECHO_NAME)
        seen = [session.get(url, proxies=spec.requests_proxies(), timeout=5).text for _ in range(5)]
    assert seen == [*sources, sources[0]]
