"""Keeping cooling exits out of new circuits with `ExcludeExitNodes`, on a Tor that others may share.

A Tor is often shared: the Docker Compose `tor-proxy`, a system Tor, `watch` beside a manual run. So:

- **Ours are marked.** study-buddy writes its exits after a marker entry, `255.255.255.255` (an address no
  relay can have, so it excludes nothing): `ExcludeExitNodes {us},$USERS...,255.255.255.255,$OURS...`.
  Everything before the marker is the user's and is always kept; everything after it is study-buddy's.
  A run that connects while another has exits excluded never takes them for the user's, and one killed
  with -9 cannot leave them behind as if they were the user's.
- **Who excludes what until when** is kept in a small registry file per Tor (in the user cache folder,
  under an advisory lock): every run lists its exclusions with their expiry. Applying the value reads
  the registry, drops the entries of runs on this host that no longer run and every expired one, and
  writes the union of the rest. Study-buddy entries in Tor that no registry entry explains (a run killed
  on another machine, a lost registry) are stale and removed.
- **One lock.** Computing and applying happen under a thread lock and the registry's file lock, so two
  workers (or two runs) blocked at once cannot apply an older list last.
- **Shrinking.** `refresh()` drops expired exclusions; the pacer calls it as it goes, so exclusions end
  with their cool-downs, not only when a new block comes. `close()` removes this run's entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import platformdirs

from studybuddy.owners import owner_is_gone

log = logging.getLogger(__name__)

MARKER = "255.255.255.255"
_FINGERPRINT = re.compile(r"^\$?([0-9A-Fa-f]{40})(?:[~=].*)?$")


class ExcludeConf(Protocol):
    """Reading and writing Tor's ExcludeExitNodes (`TorController` does it over the control port)."""

    def get_excluded(self) -> str: ...

    def set_excluded(self, value: str) -> None: ...


def registry_path(where: str) -> Path:
    """The registry file of the Tor whose control port is `where` (host:port or a socket path)."""
    digest = hashlib.sha256(where.encode("utf-8")).hexdigest()[:16]
    return platformdirs.user_cache_path("study-buddy") / "exclusions" / f"{digest}.json"


def normalise_fingerprint(fingerprint: str) -> str:
    """`$ABC...`, `abc...` or `$ABC~nickname` -> the 40 upper-case hex digits; ValueError otherwise."""
    match = _FINGERPRINT.match(fingerprint.strip())
    if not match:
        raise ValueError(f"not a relay fingerprint: {fingerprint!r}")
    return match.group(1).upper()


def split_value(value: str) -> tuple[list[str], list[str]]:
    """(the user's entries, study-buddy's fingerprints) of an ExcludeExitNodes value."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if MARKER not in entries:
        return entries, []
    at = entries.index(MARKER)
    ours: list[str] = []
    for entry in entries[at + 1 :]:
        with contextlib.suppress(ValueError):  # Tor may append "{??}" itself: it is not ours to keep
            ours.append(normalise_fingerprint(entry))
    return entries[:at], ours


def join_value(user: list[str], ours: Collection[str]) -> str:
    """The ExcludeExitNodes value: the user's entries, then the marker and ours (none: no marker)."""
    if not ours:
        return ",".join(user)
    return ",".join([*user, MARKER, *(f"${fp}" for fp in sorted(ours))])


class ExitExclusions:
    """This run's share of `ExcludeExitNodes` in one Tor. Thread-safe."""

    def __init__(
        self,
        conf: ExcludeConf,
        registry: Path,
        owner: str,
        *,
        clock: Callable[[], float] = time.time,
        is_gone: Callable[[str], bool] = owner_is_gone,
    ) -> None:
        self._conf = conf
        self._registry = registry
        self._owner = owner
        self._clock = clock
        self._is_gone = is_gone
        self._lock = threading.Lock()
        self._mine: dict[str, float] = {}  # fingerprint -> expiry (Unix time)
        self._next_expiry = math.inf
        self._closed = False

    def clean(self) -> None:
        """Remove what crashed or finished runs left behind (call once on connecting)."""
        self._apply()

    def update(self, cooling: Mapping[str, float], *, pool: Collection[str] = ()) -> None:
        """Exclude these exits for their seconds left (all others of this run end now).

        Never all of `pool` at once, counting other runs' exclusions: ExcludeExitNodes is strict, so Tor
        could build no circuit; the exit that cools off first stays allowed.
        """
        now = self._clock()
        mine = {normalise_fingerprint(fp): now + seconds for fp, seconds in cooling.items() if seconds > 0}
        with self._lock:
            if self._closed:
                return
            self._mine = mine
            self._apply(pool=pool)

    def refresh(self, *, pool: Collection[str] = ()) -> None:
        """Re-apply once an exclusion has expired (cheap to call often: nothing happens before then)."""
        with self._lock:
            if self._closed or self._clock() < self._next_expiry:
                return
            self._mine = {fp: expiry for fp, expiry in self._mine.items() if expiry > self._clock()}
            self._apply(pool=pool)

    def close(self) -> None:
        """Take this run's exclusions out of Tor (what other live runs exclude stays)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._mine = {}
            self._apply()

    def _apply(self, *, pool: Collection[str] = ()) -> None:
        with self._registry_locked() as owners:
            now = self._clock()
            owners.pop(self._owner, None)
            for owner in list(owners):
                live = {fp: at for fp, at in owners[owner].items() if at > now}
                if self._is_gone(owner) or not live:
                    del owners[owner]
                else:
                    owners[owner] = live
            if self._mine:
                owners[self._owner] = dict(self._mine)
            expiries = _merged(owners)
            expiries = _keep_one_free(expiries, pool)
            current = self._conf.get_excluded()
            user, applied = split_value(current)  # what follows the marker but no registry explains is stale
            if set(applied) != expiries.keys() or (MARKER in current and not expiries):
                self._conf.set_excluded(join_value(user, expiries))
                log.info("ExcludeExitNodes: %d study-buddy exit(s) excluded", len(expiries))
            self._next_expiry = min(self._mine.values(), default=math.inf)

    @contextlib.contextmanager
    def _registry_locked(self) -> Iterator[dict[str, dict[str, float]]]:
        """The registry's owners (owner -> fingerprint -> expiry), locked across processes; written back."""
        self._registry.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self._registry.with_suffix(".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                owners = _read_registry(self._registry)
                yield owners
                _write_registry(self._registry, owners)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _merged(owners: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Every excluded fingerprint with its latest expiry over all owners."""
    merged: dict[str, float] = {}
    for exits in owners.values():
        for fp, at in exits.items():
            merged[fp] = max(at, merged.get(fp, -math.inf))
    return merged


def _keep_one_free(expiries: dict[str, float], pool: Collection[str]) -> dict[str, float]:
    if pool and set(pool) <= expiries.keys():
        first_free = min(expiries, key=expiries.__getitem__)
        return {fp: at for fp, at in expiries.items() if fp != first_free}
    return expiries


def _read_registry(path: Path) -> dict[str, dict[str, float]]:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # a damaged registry only loses what it says: start afresh
        log.warning("%s: unreadable exclusion registry (%s); starting afresh", path, exc)
        return {}
    owners: dict[str, dict[str, float]] = {}
    for owner, exits in (data.get("owners") or {}).items() if isinstance(data, dict) else ():
        if isinstance(owner, str) and isinstance(exits, dict):
            owners[owner] = {
                fp: float(at)
                for fp, at in exits.items()
                if isinstance(at, int | float) and _FINGERPRINT.match(fp)
            }
    return owners


def _write_registry(path: Path, owners: Mapping[str, Mapping[str, float]]) -> None:
    if not owners:
        path.unlink(missing_ok=True)
        return
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"owners": owners}, sort_keys=True), encoding="utf-8")
    temporary.replace(path)
