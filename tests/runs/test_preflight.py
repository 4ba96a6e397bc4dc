"""Issue 11's bad input, as a user meets it: each one a clear line naming it, before any video is fetched.
Proxies that refuse the connection or the credentials are real (closed) ports and fake proxies on
loopback; the PO token provider is the fake bgutil server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from click.testing import CliRunner, Result

from studybuddy.cli.main import cli
from studybuddy.config import Settings
from studybuddy.errors import ConfigError, InputError
from studybuddy.proxyspec import parse_proxy
from studybuddy.runs import preflight
from studybuddy.runs.preflight import check_before_run, ping_pot_provider
from tests.bed.proxies import FakeProxy
from tests.fakes.pot_provider import FakePotProvider, plugin_version
from tests.fakes.youtube_mock import MockYouTube, video


@pytest.fixture
def youtube(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MockYouTube]:
    for name in ("STUDY_BUDDY_PROXY", "STUDY_BUDDY_PROXY_FILE", "STUDY_BUDDY_EGRESS", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    fake = MockYouTube.of([video(1)])
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru("http://127.0.0.1")
        fake.install(mock)
        yield fake


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--no-notes", *args, "vid00000001"], catch_exceptions=False)


def assert_one_clear_line(result: Result, message: str, youtube: MockYouTube) -> None:
    assert result.exit_code in (1, 2), result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert (
        result.output.strip().splitlines()[-1].startswith(("Error: ", "Usage:")) or "Error" in result.output
    )
    assert youtube.calls == []  # nothing was fetched


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--proxy", "socks5h://127.0.0.1"], "--proxy 'socks5h://127.0.0.1': bad port"),
        (["--proxy", "socks5h//127.0.0.1:1080"], "--proxy 'socks5h//127.0.0.1:1080': no scheme"),
        (["--proxy", "gopher://u:pw@h:70"], "--proxy 'gopher://u:***@h:70': unknown scheme 'gopher'"),
        (["--proxy-rotating", "http://u:pw@h:0"], "--proxy-rotating 'http://u:***@h:0': bad port"),
        (["--egress", "proxies"], "--egress proxies: no proxy given"),
        (["--egress", "tor,proxies"], "--egress tor,proxies: no proxy given"),
        (["--cookies", "missing.txt"], "--cookies missing.txt: no such file"),
        (["--cookies", "cookies.json"], "--cookies cookies.json: not a Netscape cookies file"),
        (["--pot-provider", "127.0.0.1:4416"], "--pot-provider '127.0.0.1:4416': expected the provider's"),
    ],
)
def test_bad_values_are_one_line_before_any_work(
    youtube: MockYouTube, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "cookies.json").write_text('[{"name": "SID", "value": "x"}]')
    result = invoke(*args)
    assert_one_clear_line(result, message, youtube)
    assert "pw" not in result.output


def test_a_pot_provider_that_does_not_answer(youtube: MockYouTube) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = invoke("--pot-provider", url)
    assert_one_clear_line(result, f"--pot-provider {url}: does not answer", youtube)


def test_proxies_refusing_connection_or_credentials_are_dropped_and_none_left_stops(
    youtube: MockYouTube,
) -> None:
    with FakeProxy("http", ["127.0.0.21"], credentials=("alice", "right")) as proxy:
        wrong = proxy.url(credentials=("alice", "wrong-password"))
        result = invoke("--proxy", f"socks5h://127.0.0.1:{closed_port()}", "--proxy", wrong)
        assert proxy.auth_failures == 1
    assert_one_clear_line(result, "no proxy can be used", youtube)
    lines = result.output.splitlines()
    assert any(line.endswith("refused the connection; this proxy is dropped") for line in lines)
    assert "http://alice:***@127.0.0.1:" in result.output
    assert "refused the credentials (HTTP 407); this proxy is dropped" in result.output
    assert "wrong-password" not in result.output


def test_a_plain_socks5_proxy_is_warned_about_its_dns_leak(youtube: MockYouTube) -> None:
    result = invoke("--proxy", f"socks5://127.0.0.1:{closed_port()}")
    assert "DNS leak" in result.output and "use socks5h://" in result.output


def test_with_tor_and_proxies_a_run_goes_on_through_tor_when_no_proxy_is_left() -> None:
    warnings: list[str] = []
    dead = parse_proxy(f"socks5h://127.0.0.1:{closed_port()}")
    settings = Settings(proxies=(dead,), egress="tor,proxies")
    checked = check_before_run(settings, warnings.append)
    assert checked.proxies == () and checked.uses_tor
    assert warnings[-1] == "no proxy can be used (see above): this run goes through Tor only"
    with pytest.raises(InputError, match="no proxy can be used"):
        check_before_run(Settings(proxies=(dead,)), warnings.append)


def test_the_pot_provider_answering_and_the_plugin_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakePotProvider() as provider:
        assert ping_pot_provider(provider.url) == plugin_version()
        settings = Settings(pot_provider=provider.url)
        assert check_before_run(settings, print) == settings
        monkeypatch.setattr(preflight, "pot_plugin_version", lambda: None)  # a venv without the extra
        with pytest.raises(ConfigError, match=r"pip install 'study-buddy\[pot\]'"):
            check_before_run(settings, print)
    assert provider.pings == 2


def test_cookies_get_their_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    check_before_run(Settings(cookies=tmp_path / "cookies.txt"), warnings.append)
    assert warnings == [
        f"--cookies {tmp_path / 'cookies.txt'}: YouTube may flag or ban the account these cookies belong "
        "to; they are sent only on yt-dlp's subtitle path, through each worker's own egress"
    ]
