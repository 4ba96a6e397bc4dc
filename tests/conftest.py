"""Shared fixtures: the fake Anthropic API (a real HTTP server on loopback)."""

pytest_plugins = ["tests.fakes.anthropic_server"]
