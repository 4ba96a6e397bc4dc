"""What the pacer needs from Tor, behind one seam: `ExitNetwork`, with `TorExits` as the real one.

The pacer asks the network for the exits a new circuit can land on, has it build (or reuse) the circuit
of a SOCKS identity and name its exit (a probe: one stream opened and closed without a byte sent),
release an identity's circuits, keep cooling exits out of new circuits, and name the exit that carried
a given answer. `scripts/simulate` gives the same pacer a simulated network of a thousand exits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

import socks

from studybuddy.egress.sessions import Identity, ProxyEndpoint
from studybuddy.egress.tor import ExitRelay, TorController
from studybuddy.errors import TorError

log = logging.getLogger(__name__)

PROBE_TARGET = ("www.youtube.com", 443)
EVENT_WAIT_S = 5.0  # how long STREAM/CIRC events may lag behind a successful SOCKS connect


class ExitNetwork(Protocol):
    @property
    def private(self) -> bool:
        """Whether this run owns the Tor (an embedded one): only then may exits be excluded for reputation."""

    def exit_pool(self) -> frozenset[str]:
        """The exits a new circuit can land on (the consensus's Exit relays)."""

    def probe(self, identity: Identity, timeout_s: float) -> ExitRelay | None:
        """The exit of `identity`'s circuit (built now if it has none); None when no stream reached YouTube
        through it. Raises TorError when Tor itself is gone."""

    def unreachable_exit(self, identity: Identity) -> ExitRelay | None:
        """After a failed probe: the exit the failed stream was attached to, if Tor said."""

    def release(self, identity: Identity) -> None:
        """Close the circuits only `identity` uses."""

    def exclude(self, cooling: Mapping[str, float]) -> None:
        """Keep these exits (fingerprint -> seconds left) out of new circuits; the others this run excluded
        come back."""

    def refresh(self) -> None:
        """Let exclusions whose time is up expire."""

    def newnym(self) -> bool:
        """Ask for fresh circuits everywhere (the last resort; Tor allows one per 10 s)."""

    def carrier(self, identity: Identity, source: tuple[str, int] | None) -> ExitRelay | None:
        """The exit that carried `identity`'s latest answer: exactly that of the stream from local address
        `source` when given and known, else that of `identity`'s most recent stream."""


class TorExits:
    """`ExitNetwork` over a real Tor: its control port and its SOCKS port."""

    def __init__(self, tor: TorController, socks_endpoint: ProxyEndpoint, *, private: bool) -> None:
        self.tor = tor
        self.socks = socks_endpoint
        self._private = private
        self._pool = frozenset(tor.exit_fingerprints())

    @property
    def private(self) -> bool:
        return self._private

    def exit_pool(self) -> frozenset[str]:
        return self._pool

    def probe(self, identity: Identity, timeout_s: float) -> ExitRelay | None:
        return probe_exit(self.tor, identity, self.socks, timeout_s=timeout_s)

    def unreachable_exit(self, identity: Identity) -> ExitRelay | None:
        return self.tor.exit_for(identity.username)

    def release(self, identity: Identity) -> None:
        self.tor.close_circuits_of(identity.username)

    def exclude(self, cooling: Mapping[str, float]) -> None:
        self.tor.exclusions.update(cooling, pool=self._pool)

    def refresh(self) -> None:
        self.tor.exclusions.refresh(pool=self._pool)

    def newnym(self) -> bool:
        return self.tor.newnym()

    def carrier(self, identity: Identity, source: tuple[str, int] | None) -> ExitRelay | None:
        if source is not None:
            relay = self.tor.exit_of_source(source, EVENT_WAIT_S)
            if relay is not None:
                return relay
            log.debug("no Tor stream from %s:%d; judging by %s's latest", *source, identity.username)
        return self.tor.exit_for(identity.username)


def probe_exit(
    tor: TorController,
    identity: Identity,
    proxy: ProxyEndpoint,
    *,
    target: tuple[str, int] = PROBE_TARGET,
    timeout_s: float = 60.0,
) -> ExitRelay | None:
    """Open (and close, without sending a byte) one stream with `identity`'s credentials; Tor's events
    name the exit of its circuit. None when Tor answered but could not reach `target` (renew and retry);
    TorError when Tor itself is gone."""
    mark = tor.attachments()
    sock = socks.socksocket()
    sock.set_proxy(
        socks.SOCKS5,
        proxy.host,
        proxy.port,
        rdns=True,
        username=identity.username,
        password=identity.password,
    )
    sock.settimeout(timeout_s)
    try:
        sock.connect(target)
    except socks.ProxyConnectionError:
        raise TorError(f"Tor stopped answering on its SOCKS port {proxy}") from None
    except (socks.ProxyError, OSError) as exc:
        log.debug("no stream to %s for %s: %s", target[0], identity.username, exc)
        return None
    finally:
        sock.close()
    relay = tor.wait_for_stream(identity.username, mark, EVENT_WAIT_S)
    if relay is None:
        raise TorError(f"Tor reported no circuit for a stream it opened (is {proxy} Tor's SOCKS port?)")
    return relay
