"""What `study-buddy tor status` and `study-buddy tor check` print."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

from studybuddy.config import Settings
from studybuddy.egress.circuits import probe_exit
from studybuddy.egress.reputation import PacePolicy, Reputation
from studybuddy.egress.sessions import Identity, ProxyEndpoint, new_run_id
from studybuddy.egress.tor import ExitRelay, TorController
from studybuddy.proxyspec import is_proxy_key
from studybuddy.store.archive import Archive
from studybuddy.store.exit_records import ExitRecord, Standing

SHOWN_EXITS = 5  # the best and the worst this many


def status_lines(tor: TorController, archive: Archive | None, settings: Settings) -> list[str]:
    """Bootstrap, circuits (SOCKS username, exit), and from the archive (if any) what is known of exits."""
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
    if archive is not None:
        lines.extend(archive_lines(archive, settings))
    return lines


def archive_lines(archive: Archive, settings: Settings, *, shown: int = SHOWN_EXITS) -> list[str]:
    """From the archive: each exit's reputation (the best and the worst), pace, budget and cool-down; how
    many proxies it knows, in a line of their own."""
    reputation = Reputation(PacePolicy(settings.per_exit, settings.exit_cooldown_s), store=archive)
    ranked = reputation.ranked()
    records = [record for record in ranked if not is_proxy_key(record.key)]
    proxies = Counter(record.standing for record in ranked if is_proxy_key(record.key))
    now = time.time()
    budget = settings.per_exit
    uses = Counter(
        fp for fp, event, _at in archive.exit_events(since=now - budget.window_s) if event == "use"
    )
    standings = Counter(record.standing for record in records)
    lines = [
        f"Exits known from the archive: {len(records)} ({standings[Standing.GOOD]} serve, "
        f"{standings[Standing.BAD]} blocked, {standings[Standing.UNKNOWN]} faded); "
        f"budget at most {budget.count} videos per {budget.window_s:g} s each"
    ]
    if proxies:
        lines.append(
            f"Proxies known from the archive: {proxies.total()} ({proxies[Standing.GOOD]} serve, "
            f"{proxies[Standing.BAD]} blocked, {proxies[Standing.UNKNOWN]} faded)"
        )
    if not records:
        return [*lines, "  none yet: run study-buddy to learn which exits serve"]
    best = [r for r in records[:shown] if r.standing is Standing.GOOD]
    worst = [r for r in records[::-1][:shown] if r.standing is not Standing.GOOD and r not in best]
    for title, chosen in (("Best", best), ("Worst", worst)):
        if chosen:
            lines.append(f"{title}:")
            lines.extend(_exit_line(record, reputation, uses[record.key], now) for record in chosen)
    return lines


def _exit_line(record: ExitRecord, reputation: Reputation, used: int, now: float) -> str:
    pace = reputation.limits(record.key)
    when = (
        f", {record.last_outcome} {_ago(now - record.last_at)} ago"
        if record.last_outcome and record.last_at
        else ""
    )
    cooling = record.cooling_until - now if record.cooling_until else 0.0
    cooling_text = f", cooling {cooling:.0f} s" if cooling > 0 else ""
    return (
        f"  {record.key}  {record.standing:<7} served {record.served:5.1f}  blocked {record.blocked:5.1f}"
        f"{when}; {used}/{pace.count} used{cooling_text}"
    )


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


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
