"""Finding a Tor for the run: the system's (by its control port) or a private one we launch.

`resolve_tor` turns `--tor auto|system|embedded|off` into a `TorSetup` (controller + SOCKS endpoint +
the embedded process, if any), a context manager that puts everything back at the end of the run.
An embedded tor is owned by this process twice over: `__OwningControllerProcess` makes it exit if
we die, and our control connection takes ownership (TAKEOWNERSHIP, done by stem) so it exits the
moment that connection closes. Concurrent runs each get a data folder of their own (the cached one if
it is free, else a numbered sibling, else a temporary one), and a port taken between our choice and
tor's bind is tried again with new ones.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen, TimeoutExpired
from types import TracebackType
from typing import BinaryIO, Literal

import platformdirs
import stem.process

from studybuddy.egress.sessions import ProxyEndpoint
from studybuddy.egress.tor import TorController, TorUnreachableError
from studybuddy.errors import TorError

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, str], None]
TorMode = Literal["auto", "system", "embedded", "off"]
TorrcValue = str | list[str]

NOT_INSTALLED = "tor is not installed: apt-get install tor, or use the Docker Compose tor-proxy, or --tor off"
LOOPBACK = "127.0.0.1"
_POLL_INTERVAL = 0.25  # seconds between bootstrap checks
_STOP_GRACE = 5.0  # seconds tor gets to exit before it is killed
_RESERVED_KEYS = {"datadirectory", "socksport", "controlport", "controlsocket"}
DATA_DIR_SLOTS = 8  # data folders (tor, tor-2, ... tor-8) for concurrent runs before a temporary one
PORT_ATTEMPTS = 3  # launches on new ports after a port was taken in between
_LOCK_FILE = "study-buddy.lock"  # held by the process whose tor uses the folder


def default_data_dir() -> Path:
    """Where the embedded tor keeps its state between runs (so later starts are fast)."""
    return platformdirs.user_cache_path("study-buddy") / "tor"


def read_torrc(path: Path) -> dict[str, TorrcValue]:
    """Simple torrc `Key value` lines; a repeated key gives a list. Comments and blank lines are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TorError(f"cannot read the Tor config file {path}: {exc}") from None
    config: dict[str, TorrcValue] = {}
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        key, _, value = text.partition(" ")
        value = value.strip()
        previous = config.get(key)
        if previous is None:
            config[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            config[key] = [previous, value]
    return config


def merge_torrc(config: dict[str, TorrcValue], extra_torrc: Path) -> dict[str, TorrcValue]:
    """`config` with the file's settings on top (tor's keys are case-insensitive); ports stay ours."""
    extra = read_torrc(extra_torrc)
    reserved = [key for key in extra if key.casefold() in _RESERVED_KEYS]
    if reserved:
        raise TorError(f"{extra_torrc}: leave out {', '.join(reserved)}, study-buddy chooses them")
    replaced = {key.casefold() for key in extra}
    merged = {key: value for key, value in config.items() if key.casefold() not in replaced}
    merged.update(extra)
    return merged


def _free_ports(count: int) -> list[int]:
    """Ports nobody listens on right now (all probes open at once, so they differ)."""
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind((LOOPBACK, 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


class _PortTaken(TorError):
    """A port we chose was taken by the time tor bound it (another process got it in between)."""


def _launch_failure(exc: OSError, output: list[str]) -> TorError:
    """One line from tor's own complaints: a taken port, else its last [err]/[warn] line."""
    for line in output:
        if "Address already in use" in line:
            return _PortTaken(f"tor could not start, a port is taken: {_message_of(line)}")
    problems = [
        line for line in output if ("[err]" in line or "[warn]" in line) and "see warnings" not in line
    ]
    reason = _message_of(problems[-1]) if problems else str(exc)
    return TorError(f"tor could not start: {reason}")


def _message_of(log_line: str) -> str:
    """`Nov 24 02:19:47.000 [warn] Something` -> `Something`."""
    return log_line.split("] ", 1)[-1].strip()


def _prepare_data_dir(data_dir: Path) -> None:
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        data_dir.chmod(0o700)  # tor refuses a data directory others can read
    except OSError as exc:
        raise TorError(f"cannot use {data_dir} as tor's data directory: {exc}") from None


@dataclass
class _DataDir:
    """A data folder this process holds for its tor, by a lock file inside it, until `release()`."""

    path: Path
    lock: BinaryIO | None  # None: a temporary folder, no one else's to take
    temporary: bool = False

    def release(self) -> None:
        if self.lock is not None:
            self.lock.close()  # drops the lock
        if self.temporary:
            shutil.rmtree(self.path, ignore_errors=True)


def _claim_data_dir(base: Path) -> _DataDir:
    """A data folder no other run's tor uses: `base` (so a single run keeps tor's cache, and starts fast),
    else the first free numbered sibling (`tor-2`, `tor-3`, ...), else a temporary folder. Tor refuses a
    data folder another tor has locked; our own lock, taken first, lets concurrent runs pick different
    folders instead of failing."""
    for number in range(1, DATA_DIR_SLOTS + 1):
        path = base if number == 1 else base.with_name(f"{base.name}-{number}")
        _prepare_data_dir(path)
        lock = _try_lock(path / _LOCK_FILE)
        if lock is not None:
            return _DataDir(path, lock)
    path = Path(tempfile.mkdtemp(prefix="study-buddy-tor-"))
    log.info("%d tor data folders in use: this one gets a temporary folder", DATA_DIR_SLOTS)
    return _DataDir(path, None, temporary=True)


def _try_lock(path: Path) -> BinaryIO | None:
    """`path` opened and locked for this process, or None if another process holds its lock."""
    try:
        handle = path.open("ab")
    except OSError as exc:
        raise TorError(f"cannot use {path.parent} as tor's data directory: {exc}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _start_on_free_ports(
    tor_command: str, config: dict[str, TorrcValue], timeout: float
) -> tuple[Popen[bytes], int, int]:
    """Start tor with `config` on two loopback ports free a moment ago: (process, SOCKS port, control port).
    A port another process took before tor bound it is tried again with new ones (bounded)."""
    attempt = 1
    while True:
        socks_port, control_port = _free_ports(2)
        ports: dict[str, TorrcValue] = {
            "SocksPort": f"{LOOPBACK}:{socks_port} IsolateSOCKSAuth KeepAliveIsolateSOCKSAuth",
            "ControlPort": f"{LOOPBACK}:{control_port}",
        }
        try:
            return _start(tor_command, config | ports, timeout), socks_port, control_port
        except _PortTaken as exc:
            if attempt >= PORT_ATTEMPTS:
                raise
            log.info("%s; trying other ports", exc)
            attempt += 1


class EmbeddedTor:
    """A private tor process on free loopback ports, with its owning controller."""

    def __init__(
        self,
        process: Popen[bytes],
        controller: TorController,
        socks: ProxyEndpoint,
        control: tuple[str, int],
        data: _DataDir,
    ) -> None:
        self.process = process
        self.controller = controller
        self.socks = socks
        self.control = control
        self.data_dir = data.path
        self._data = data
        self._stopped = False
        self._stop_lock = threading.Lock()
        atexit.register(self.stop)

    @classmethod
    def launch(
        cls,
        *,
        data_dir: Path | None = None,
        extra_torrc: Path | None = None,
        on_progress: ProgressCallback | None = None,
        timeout: float = 120,
        wait_for_bootstrap: bool = True,
    ) -> EmbeddedTor:
        """Start tor and connect to it; with `wait_for_bootstrap`, return once it is fully bootstrapped.

        `data_dir` (default: the user cache) is used unless another run's tor has it: then a numbered
        sibling, else a temporary folder (see `_claim_data_dir`); `data_dir` is where it ended up. Settings in
        `extra_torrc` replace ours key by key (e.g. `DisableNetwork 1` for an offline start), except the data
        directory and the ports, which are ours to choose.
        """
        tor_command = shutil.which("tor")
        if tor_command is None:
            raise TorError(NOT_INSTALLED)
        deadline = time.monotonic() + timeout
        data = _claim_data_dir(data_dir or default_data_dir())
        try:
            config: dict[str, TorrcValue] = {
                "DataDirectory": str(data.path),
                "CookieAuthentication": "1",
                "ConfluxEnabled": "0",
            }
            if extra_torrc is not None:
                config = merge_torrc(config, extra_torrc)
            process, socks_port, control_port = _start_on_free_ports(tor_command, config, timeout)
            try:
                controller = TorController.connect(control=(LOOPBACK, control_port))
            except BaseException:
                _end(process)
                raise
        except BaseException:
            data.release()
            raise
        socks = ProxyEndpoint(LOOPBACK, socks_port)
        embedded = cls(process, controller, socks, (LOOPBACK, control_port), data)
        log.info("started tor (pid %d), SOCKS %s", process.pid, embedded.socks)
        if wait_for_bootstrap:
            try:
                embedded._wait_for_bootstrap(deadline, timeout, on_progress)
            except BaseException:  # also Ctrl-C: never leave the process behind
                embedded.stop()
                raise
        return embedded

    def _wait_for_bootstrap(
        self, deadline: float, timeout: float, on_progress: ProgressCallback | None
    ) -> None:
        """Poll the bootstrap phase until 100 %, reporting each change; TorError at `deadline`."""
        last = -1
        while True:
            progress, summary = self.controller.bootstrap_phase()
            if progress != last and on_progress is not None:
                on_progress(progress, summary)
            last = progress
            if progress >= 100:
                return
            if self.process.poll() is not None:
                raise TorError(f"tor exited while bootstrapping (at {progress}%: {summary})")
            if time.monotonic() >= deadline:
                raise TorError(
                    f"tor did not finish bootstrapping within {timeout:g} s (stuck at {progress}%: {summary})"
                )
            time.sleep(_POLL_INTERVAL)

    def stop(self) -> None:
        """Disconnect (tor exits as its owner leaves), then make sure the process is gone. Idempotent."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        atexit.unregister(self.stop)
        self.controller.close()
        _end(self.process)
        self._data.release()
        log.info("stopped tor (pid %d)", self.process.pid)


def _start(tor_command: str, config: dict[str, TorrcValue], timeout: float) -> Popen[bytes]:
    """Launch tor and wait until its listeners are open (its "Bootstrapped 0%" line)."""
    output: list[str] = []
    # stem's timeout uses SIGALRM, which only the main thread may set
    in_main_thread = threading.current_thread() is threading.main_thread()
    try:
        process: Popen[bytes] = stem.process.launch_tor_with_config(
            config=config,
            tor_cmd=tor_command,
            completion_percent=0,
            init_msg_handler=output.append,
            timeout=timeout if in_main_thread else None,
            take_ownership=True,
        )
    except OSError as exc:
        raise _launch_failure(exc, output) from None
    return process


def _end(process: Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=_STOP_GRACE)
    except TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class TorSetup:
    """What a run uses from Tor; leaving the `with` block restores and stops everything."""

    controller: TorController
    socks: ProxyEndpoint
    embedded: EmbeddedTor | None = None

    def is_alive(self) -> bool:
        """Whether this Tor can still be used: its control connection is open and an embedded tor runs."""
        if self.embedded is not None and self.embedded.process.poll() is not None:
            return False
        return self.controller.is_alive()

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()  # closes the controller too
        else:
            self.controller.close()

    def __enter__(self) -> TorSetup:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class TorKeeper:
    """One Tor for many runs (`watch`): opened when a run first needs it, kept between runs, opened again
    only when it is gone (Tor died or restarted: its control connection closed), closed by `close()`."""

    def __init__(self, open_tor: Callable[[], TorSetup | None]) -> None:
        self._open = open_tor
        self._setup: TorSetup | None = None
        self._lock = threading.Lock()

    def get(self) -> TorSetup | None:
        """The kept Tor, connected (or launched) again if it is gone; None without Tor (`--proxy`, off)."""
        with self._lock:
            if self._setup is not None and not self._setup.is_alive():
                log.warning("the Tor of this watch is gone: connecting again")
                self._setup.close()
                self._setup = None
            if self._setup is None:
                self._setup = self._open()
            return self._setup

    def close(self) -> None:
        with self._lock:
            setup, self._setup = self._setup, None
        if setup is not None:
            setup.close()


def resolve_tor(
    mode: TorMode,
    *,
    socks: ProxyEndpoint,
    control: tuple[str, int],
    password: str | None,
    tor_config: Path | None,
    on_progress: ProgressCallback | None = None,
) -> TorSetup | None:
    """The Tor for this run.

    off: none; system: the Tor at `control`; embedded: launch one; auto: the Tor at `control` if one
    answers there, else launch one if `tor` is installed.
    """
    if mode == "off":
        return None
    if mode != "embedded":
        try:
            return TorSetup(TorController.connect(control=control, password=password), socks)
        except TorUnreachableError as exc:
            if mode == "system":
                raise
            if shutil.which("tor") is None:
                raise TorError(f"{exc}, and {NOT_INSTALLED}") from None
            log.info("%s: launching a private tor", exc)
    embedded = EmbeddedTor.launch(extra_torrc=tor_config, on_progress=on_progress)
    return TorSetup(embedded.controller, embedded.socks, embedded)
