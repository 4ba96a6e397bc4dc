"""The end-to-end test bed: a private Tor network on loopback and the servers it reaches."""
