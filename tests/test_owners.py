"""Owners of shared things (claims, exclusions in a shared Tor) and whether they still run."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from studybuddy.owners import owner_is_gone, process_owner
from studybuddy.store.archive import Archive


def a_dead_owner() -> str:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return f"{socket.gethostname()}:{dead.pid}:run0"


def test_only_a_process_of_this_host_that_no_longer_runs_is_gone() -> None:
    dead = a_dead_owner()
    assert owner_is_gone(dead)
    assert not owner_is_gone(process_owner("me"))  # this very process
    assert not owner_is_gone(f"another-host:{dead.split(':')[1]}:run0")  # cannot tell: wait for the expiry
    assert not owner_is_gone("garbage")


def test_a_claim_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    dead = a_dead_owner()
    with Archive.open(tmp_path) as archive:
        assert archive.claim("vid00000001", dead, ttl_s=600).granted
        refused = archive.claim("vid00000001", "x:1:y", ttl_s=600)
        assert not refused.granted
        taken = archive.claim("vid00000001", process_owner("me"), ttl_s=600, is_gone=owner_is_gone)
        assert taken.granted
