"""A real PostgreSQL server for the tests: `initdb` into a temporary folder, the server started on a free
loopback port (its unix socket in that folder too), stopped by its PID at the end of the session.

As root (CI), the server runs as `nobody`: PostgreSQL refuses to run as root. Connections over TCP need a
password (scram-sha-256), so wrong credentials can be tried; each test gets a database of its own.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "studybuddy"
PASSWORD = "pg-s3cret-" + secrets.token_hex(4)
READY = b"database system is ready to accept connections"


def _binary(name: str) -> str:
    """PostgreSQL's own programs (Debian keeps them under /usr/lib/postgresql/<version>/bin)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    path = found[-1] if found else shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (./scripts/test installs it)")
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]


@dataclass
class PostgresServer:
    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    def url(self, database: str = "postgres", *, password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A new PostgreSQL server in a temporary folder, for as long as the context lasts (tests, benchmarks)."""
    folder = Path(tempfile.mkdtemp(prefix="study-buddy-pg-"))  # not under pytest's folder: root-only
    data = folder / "data"
    pwfile = folder / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(folder, "nobody", "nogroup")
        shutil.chown(pwfile, "nobody", "nogroup")
    prefix = _as_server_user()
    initdb = [_binary("initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}", "-E", "UTF8"]
    initdb += ["--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"]
    made = subprocess.run([*prefix, *initdb], capture_output=True, text=True, timeout=120, check=False)
    if made.returncode != 0:
        raise RuntimeError(f"initdb failed: {made.stderr.strip()}")
    port = _free_port()
    options = ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={folder}"]
    options += ["-c", "fsync=off", "-c", "max_connections=200", "-c", "logging_collector=off"]
    process = subprocess.Popen(
        [*prefix, _binary("postgres"), "-D", str(data), "-p", str(port), *options],
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    for line in process.stderr:  # the server says when it is ready (or exits, ending the stream)
        if READY in line:
            break
    else:
        raise RuntimeError(f"PostgreSQL did not start (exit code {process.wait()})")
    drain = threading.Thread(target=process.stderr.read, daemon=True)  # its later log lines: unread
    drain.start()
    try:
        yield PostgresServer(port, folder, process)
    finally:
        os.kill(process.pid, signal.SIGINT)  # fast shutdown, by PID
        process.wait(timeout=60)
        drain.join()
        process.stderr.close()
        shutil.rmtree(folder)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def fresh_database(postgres_server: PostgresServer) -> Callable[[], str]:
    """Makes an empty database (each call another); returns its URL."""
    return lambda: postgres_server.create_database(f"t{secrets.token_hex(8)}")
