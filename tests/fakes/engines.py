"""The Anthropic engine pointed at the fake API (`anthropic_server`), for the tests that need one."""

from __future__ import annotations

from studybuddy.notes.anthropic import AnthropicEngine
from studybuddy.notes.ratelimit import RequestLimiter
from tests.fakes.anthropic_server import API_KEY, MODEL, FakeAnthropic


def make_engine(fake: FakeAnthropic, **options: object) -> AnthropicEngine:
    """An engine on `fake` (no assessment and two SDK retries unless `options` say otherwise)."""
    settings: dict[str, object] = {
        "api_key": API_KEY,
        "model": MODEL,
        "limiter": RequestLimiter(4, 1000),
        "max_retries": 2,
        "base_url": fake.url,
        "assessment": False,
    }
    settings.update(options)
    return AnthropicEngine(**settings)  # type: ignore[arg-type]
