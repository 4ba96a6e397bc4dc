"""Tests for studybuddy.cli_ui: `study-buddy ui` starts, answers, names a port in use, stops on Ctrl-C, and
says how to install the web libraries when they are missing."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from studybuddy.cli.main import cli
from studybuddy.cli.options import INTERRUPTED

CLI = str(Path(sys.executable).parent / "study-buddy")


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_a_port_in_use_is_one_error_that_names_it(taken_port: int, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["ui", "--no-browser", "--port", str(taken_port), "-o", str(tmp_path / "notes")]
    )
    assert result.exit_code == 1
    assert (
        result.output
        == f"Error: --port {taken_port}: 127.0.0.1:{taken_port} is in use; choose another --port\n"
    )


def test_without_the_ui_extra_it_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now fails as if not installed
    monkeypatch.delitem(sys.modules, "studybuddy.ui.server", raising=False)
    result = CliRunner().invoke(cli, ["ui", "--no-browser"])
    assert result.exit_code == 1
    assert result.output == "Error: the web UI needs the 'ui' extra: pip install 'study-buddy[ui]'\n"


def test_the_help_lists_the_ui_command_and_its_options() -> None:
    result = CliRunner().invoke(cli, ["ui", "--help"])
    assert result.exit_code == 0
    for option in ("--port", "--host", "--no-browser", "--watch-interval", "--parallel", "--tor"):
        assert option in result.output


def test_the_server_prints_its_address_answers_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "STUDY_BUDDY_TOR": "off", "HOME": str(tmp_path)}
    process = subprocess.Popen(
        [CLI, "ui", "--no-browser", "--port", "0", "-o", str(tmp_path / "notes")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        assert first.startswith("study-buddy ui: http://127.0.0.1:")
        url = first.removeprefix("study-buddy ui: ")
        base = url.split("?")[0]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "notes", timeout=10)
        assert refused.value.code == 403
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with browser.open(url, timeout=10) as page:  # redirected without the token, with its cookie
            assert page.status == 200 and page.url == base
            assert b"Start the run" in page.read()
    finally:
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err  # as the CLI ends on Ctrl-C
    assert err.splitlines()[-1] == INTERRUPTED
    assert "Traceback" not in err
