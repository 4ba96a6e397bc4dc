"""Tor control-port events as Tor writes them, parsed by stem: for tests of the stream map and controller."""

from __future__ import annotations

from typing import Any

from stem.response import ControlMessage

GUARD, MIDDLE = "A" * 40, "B" * 40
EXIT_1, EXIT_2 = "C" * 40, "D" * 40
USER, OTHER = "sb-run1-w0-g0", "sb-run1-w1-g0"


def event(line: str) -> Any:
    return ControlMessage.from_str(f"650 {line}\r\n", "EVENT")


def circ(circuit_id: str, status: str, exit_fp: str = EXIT_1, nickname: str = "exitone") -> Any:
    path = f"${GUARD}~guard,${MIDDLE}~middle,${exit_fp}~{nickname}"
    return event(f"CIRC {circuit_id} {status} {path} BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL")


def stream(
    stream_id: str, status: str, circuit_id: str, username: str | None = USER, source_port: int = 50000
) -> Any:
    """A STREAM event; like Tor, only NEW names the source address (the local end of our SOCKS socket)."""
    target = "www.youtube.com:443" if status in ("NEW", "SENTCONNECT") else "142.250.1.1:443"
    auth = f' SOCKS_USERNAME="{username}" SOCKS_PASSWORD="pw"' if username else ""
    source = f" SOURCE_ADDR=127.0.0.1:{source_port}" if status == "NEW" else ""
    return event(
        f"STREAM {stream_id} {status} {circuit_id} {target}{source} PURPOSE=USER{auth}"
        " CLIENT_PROTOCOL=SOCKS5 NYM_EPOCH=0 SESSION_GROUP=-4 ISO_FIELDS=SOCKS_USERNAME,SOCKS_PASSWORD"
    )
