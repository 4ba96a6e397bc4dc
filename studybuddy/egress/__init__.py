"""Where YouTube traffic leaves from: Tor (controller, embedded Tor, streams, circuits, exclusions,
status), sessions and identities, the per-exit limiter, exit reputation and its judges, and proxies."""
