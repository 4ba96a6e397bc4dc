"""What `study-buddy tor status` and `study-buddy tor check` print."""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from .archive import Archive
from .config import Settings
from .exits import ExitLimiter
from .pacing import probe_exit
from .sessions import Identity, ProxyEndpoint, new_run_id
from .tor import ExitRelay, TorController


def status_lines(tor: TorController, limiter: ExitLimiter | None, settings: Settings) -> list[str]:
    """Bootstrap, circuits (SOCKS username, exit), and from the archive each exit's budget and cool-down."""
    progress, summary = tor.bootstrap_phase()
    lines = [f"Tor: bootstrapped {progress}% ({summary})"]
    circuits = tor.circuits()
    built = [c for c in circuits if c.status == "BUILT"]
    lines.append(f"Circuits: {len(circuits)} ({len(built)} built)")
    users_by_exit: dict[ExitRelay, list[str]] = defaultdict(list)
    for circuit in circuits:
        exit_label = circuit.exit.label if circuit.exit else "-"
        user = circuit.socks_username or "-"
        purpose = circuit.purpose or ""
        lines.append(f"  {circuit.id:>5}  {circuit.status:<9} {purpose:<9} {user:<28} {exit_label}")
        if circuit.exit is not None and circuit.socks_username:
            users_by_exit[circuit.exit].append(circuit.socks_username)
    lines.append(f"Exits in use: {len(users_by_exit)}")
    for relay, users in sorted(users_by_exit.items(), key=lambda item: item[0].fingerprint):
        lines.append(f"  {relay.label:<40} {relay.fingerprint}  {len(users)} username(s)")
    if limiter is not None:
        budget = settings.per_exit
        statuses = limiter.status()
        lines.append(f"Budgets ({budget.count} videos per {budget.window_s:g} s) and cool-downs (archive):")
        if not statuses:
            lines.append("  no exit used or blocked recently")
        for status in statuses:
            cooling = f", cooling {status.cooling_left_s:.0f} s" if status.cooling_left_s else ""
            lines.append(f"  {status.fp}  {status.uses_in_window}/{budget.count} used{cooling}")
    return lines


def check_lines(tor: TorController, socks: ProxyEndpoint, workers: int) -> list[str]:
    """Open one circuit per worker (own credentials each) and say which exit each got."""
    run_id = new_run_id()
    identities = [Identity.first(run_id, index) for index in range(workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        relays = list(pool.map(lambda identity: probe_exit(tor, identity, socks), identities))
    lines = []
    for identity, relay in zip(identities, relays, strict=True):
        where = f"{relay.label}  {relay.fingerprint}" if relay else "no circuit reached www.youtube.com"
        lines.append(f"worker {identity.worker}: {where}")
        tor.close_circuits_of(identity.username)
    distinct = {relay.fingerprint for relay in relays if relay is not None}
    lines.append(f"{workers} worker(s) on {len(distinct)} distinct exit(s)")
    return lines


def archived_limiter(settings: Settings) -> ExitLimiter | None:
    """The limiter as the archive of `settings.output` remembers it, or None without an archive."""
    from .runner import exit_limiter

    if not (settings.output / Archive.FILENAME).is_file():
        return None
    with Archive.open(settings.output) as archive:
        return exit_limiter(settings, archive)
