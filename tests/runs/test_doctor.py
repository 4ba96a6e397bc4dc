"""`study-buddy doctor`: every check with its fix, `--json`, the exit code; proxies and their exit IPs on the
bed's fake proxies; the key with the fake Anthropic API; Tor on the private Tor network."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from studybuddy.cli.main import cli
from tests.bed.proxies import IpEcho, ProxyBed
from tests.bed.tornet import TorNetwork
from tests.fakes.anthropic_server import API_KEY, MODEL, FakeAnthropic
from tests.fakes.pot_provider import FakePotProvider, plugin_version


@pytest.fixture(autouse=True)
def quiet_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "STUDY_BUDDY_PROXY",
        "STUDY_BUDDY_POT_PROVIDER",
        "STUDY_BUDDY_CA_BUNDLE",
        "ANTHROPIC_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def doctor(*args: str) -> Result:
    return CliRunner().invoke(cli, ["doctor", "--output", "notes", *args], catch_exceptions=False)


def as_json(*args: str) -> dict[str, Any]:
    result = doctor("--json", *args)
    data: dict[str, Any] = json.loads(result.output)
    assert data["exit_code"] == result.exit_code
    return data


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in data["checks"]}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_one_screen_each_failure_with_its_fix_and_exit_code_1() -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    result = doctor(
        "--tor", "off", "--proxy", f"socks5h://u:secret@127.0.0.1:{closed_port()}", "--pot-provider", dead
    )
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("OK    tor") and "not used (--egress auto)" in lines[0]
    proxy = next(index for index, line in enumerate(lines) if line.startswith("FAIL  proxy socks5h://u:***@"))
    assert lines[proxy].endswith("refused the connection") and "fix: " in lines[proxy + 1]
    assert any(line.startswith("FAIL  po token provider") and "does not answer" in line for line in lines)
    assert any(line.startswith("OK    yt-dlp") for line in lines)
    assert any(line.startswith("WARN  anthropic key") for line in lines)
    assert any(line.startswith("OK    disk") and "GiB free for notes" in line for line in lines)
    assert lines[-1].startswith("8 checks: 2 failed, ")
    assert "secret" not in result.output


def test_json_gives_the_same_as_data(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate")
    data = as_json("--tor", "off", "--ca-bundle", str(bundle))
    checks = by_name(data)
    assert list(checks) == [
        "tor",
        "yt-dlp",
        "js runtime",
        "po token provider",
        "anthropic key",
        "ca bundle",
        "disk",
    ]
    assert checks["tor"]["status"] == "warn" and checks["tor"]["fix"]
    assert checks["ca bundle"]["status"] == "fail" and data["exit_code"] == 1
    assert checks["po token provider"]["status"] == "warn"
    assert "--pot-provider" in checks["po token provider"]["fix"]
    assert all(set(check) == {"name", "status", "detail", "fix"} for check in data["checks"])


def test_a_bad_proxy_file_line_is_a_failed_check(tmp_path: Path) -> None:
    (tmp_path / "proxies.txt").write_text("socks4://h:1\n")
    checks = by_name(as_json("--tor", "off", "--proxy-file", "proxies.txt"))
    assert checks["proxy file"]["status"] == "fail"
    assert "proxies.txt:1: unknown scheme 'socks4'" in checks["proxy file"]["detail"]


def test_the_pot_provider_that_answers() -> None:
    with FakePotProvider() as provider:
        checks = by_name(as_json("--tor", "off", "--pot-provider", provider.url))
    assert checks["po token provider"]["status"] == "ok"
    assert plugin_version() in checks["po token provider"]["detail"]


def test_the_key_is_checked_with_one_token_only_when_asked(
    fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    unchecked = by_name(as_json("--tor", "off", "--model", MODEL))["anthropic key"]
    assert unchecked["status"] == "ok" and "not checked" in unchecked["detail"]
    assert fake_anthropic.message_requests() == []
    checked = by_name(as_json("--tor", "off", "--model", MODEL, "--check-key"))["anthropic key"]
    assert checked["status"] == "ok" and "valid" in checked["detail"]
    (call,) = fake_anthropic.message_requests()
    assert call.body["max_tokens"] == 1
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-wrong-key-000000000000")
    result = doctor("--tor", "off", "--model", MODEL, "--check-key")
    assert result.exit_code == 1 and "FAIL  anthropic key" in result.output
    assert "sk-ant-wrong" not in result.output and API_KEY not in result.output


@pytest.fixture
def echo() -> Iterator[IpEcho]:
    with IpEcho() as server:
        yield server


def test_each_proxy_and_the_exit_ip_seen_through_it(
    fake_proxies: ProxyBed, echo: IpEcho, fake_youtube: Any
) -> None:
    args = ["--tor", "off", "--ca-bundle", fake_youtube.ca_bundle, "--ip-echo-url", echo.url]
    for proxy in (fake_proxies.socks, fake_proxies.http, fake_proxies.https):
        args += ["--proxy", proxy.url()]
    args += ["--proxy-rotating", fake_proxies.rotating.url()]
    data = as_json(*args)
    proxies = [check for check in data["checks"] if check["name"].startswith("proxy ")]
    assert [check["status"] for check in proxies] == ["ok"] * 4, proxies
    assert [check["detail"] for check in proxies[:3]] == [f"exit IP 127.0.0.2{n}" for n in (1, 2, 3)]
    assert proxies[3]["detail"].startswith("rotating, exit IP 127.0.0.3")
    assert "s3cret" not in json.dumps(data)
    assert fake_youtube.stats()["timeline"] == []  # tunnels were opened, no request was sent


@pytest.mark.network
def test_tor_bootstrap_and_exits(tor_network: TorNetwork) -> None:
    control = f"{tor_network.control[0]}:{tor_network.control[1]}"
    tor = by_name(as_json("--tor", "system", "--tor-control", control))["tor"]
    assert tor["status"] == "ok", tor
    assert tor["detail"] == f"at {control}: bootstrapped 100% (Done), 4 exits in the consensus"
    nothing = by_name(as_json("--tor", "system", "--tor-control", f"127.0.0.1:{closed_port()}"))["tor"]
    assert nothing["status"] == "fail" and nothing["fix"]
