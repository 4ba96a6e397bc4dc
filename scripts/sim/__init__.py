"""The simulator of `scripts/simulate`: virtual time, a synthetic Tor network and YouTube, the policies."""
