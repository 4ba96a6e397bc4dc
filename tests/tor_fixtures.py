"""A real tor that makes no outside connection (`DisableNetwork 1`), for the tests of tor and torlaunch."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def start_tor(tmp_path: Path) -> Iterator[Callable[..., tuple[str, int]]]:
    """Start a tor with `DisableNetwork 1` and the given torrc lines; returns its control (host, port)."""
    if shutil.which("tor") is None:
        pytest.skip("tor is not installed")
    processes: list[subprocess.Popen[bytes]] = []

    def start(*lines: str) -> tuple[str, int]:
        data = tmp_path / f"tor{len(processes)}"
        data.mkdir(mode=0o700)
        port_file = data / "control-port"
        torrc = data / "torrc"
        settings = [
            f"DataDirectory {data}",
            "ControlPort 127.0.0.1:auto",
            f"ControlPortWriteToFile {port_file}",
            "DisableNetwork 1",
            f"Log notice file {data / 'log'}",
            *lines,
        ]
        torrc.write_text("\n".join(settings) + "\n")
        processes.append(subprocess.Popen(["tor", "-f", str(torrc)], stdout=subprocess.DEVNULL))
        for _ in range(100):
            if port_file.exists() and port_file.read_text().endswith("\n"):
                first_line = port_file.read_text().splitlines()[0]  # PORT=127.0.0.1:N
                host, port = first_line.removeprefix("PORT=").rsplit(":", 1)
                return host, int(port)
            if processes[-1].poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"tor did not start: {(data / 'log').read_text()}")

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)
