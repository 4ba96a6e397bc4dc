"""Tests for studybuddy.units: durations and per-exit budgets as users type them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from studybuddy.errors import InputError
from studybuddy.units import ExitBudget, parse_duration

# parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800.0),
        ("90s", 90.0),
        ("1h30m", 5400.0),
        ("45", 45.0),
        ("2.5m", 150.0),
        ("1h2m3s", 3723.0),
        (" 1H ", 3600.0),
        ("0", 0.0),
    ],
)
def test_parse_duration_accepts_units_and_bare_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", " ", "m", "1x", "-5", "1m30h", "1h 30m", "1e3", "inf", "nan", "1.m", ".5s", "9" * 400 + "h"]
)
def test_parse_duration_rejects_bad_text_in_one_line_naming_it(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert message.startswith(f"duration {text!r}: expected a duration like 30m")
    assert "\n" not in message


def test_parse_duration_error_names_the_option() -> None:
    with pytest.raises(InputError, match=r"^--cooldown '10 minutes': expected a duration"):
        parse_duration("10 minutes", option="--cooldown")


@given(
    hours=st.none() | st.integers(0, 10_000),
    minutes=st.none() | st.integers(0, 10_000),
    seconds=st.none() | st.integers(0, 10_000),
)
def test_parse_duration_round_trips_generated_hms(
    hours: int | None, minutes: int | None, seconds: int | None
) -> None:
    parts = [(hours, "h"), (minutes, "m"), (seconds, "s")]
    text = "".join(f"{value}{unit}" for value, unit in parts if value is not None)
    expected = (hours or 0) * 3600 + (minutes or 0) * 60 + (seconds or 0)
    if not text:
        with pytest.raises(InputError):
            parse_duration(text)
    else:
        assert parse_duration(text) == expected


@given(whole=st.integers(0, 10**6), hundredths=st.integers(0, 99), unit=st.sampled_from(["", "s", "m", "h"]))
def test_parse_duration_round_trips_decimals(whole: int, hundredths: int, unit: str) -> None:
    scale = {"": 1, "s": 1, "m": 60, "h": 3600}[unit]
    assert parse_duration(f"{whole}.{hundredths:02d}{unit}") == pytest.approx(
        (whole + hundredths / 100) * scale
    )


# ExitBudget.parse


@pytest.mark.parametrize(
    ("text", "count", "window_s"),
    [
        ("8/10m", 8, 600.0),
        ("20/1h", 20, 3600.0),
        ("5/30s", 5, 30.0),
        ("1/90", 1, 90.0),
        (" 3/1h30m ", 3, 5400.0),
    ],
)
def test_budget_parse(text: str, count: int, window_s: float) -> None:
    assert ExitBudget.parse(text) == ExitBudget(count, window_s)


@pytest.mark.parametrize(
    "text",
    [
        "8",
        "8/",
        "/10m",
        "0/10m",
        "-1/10m",
        "1.5/10m",
        "x/10m",
        "8/0",
        "8/0s",
        "8/10x",
        "8/10m/3",
        "²/10m",
        "",
    ],
)
def test_budget_parse_rejects_bad_text_in_one_line(text: str) -> None:
    with pytest.raises(InputError) as caught:
        ExitBudget.parse(text)
    message = str(caught.value)
    assert message.startswith(f"--per-exit {text!r}: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0/1m", "COUNT must be at least 1"),
        ("3/0s", "WINDOW must be longer than 0s"),
        ("x/1m", "whole number"),
    ],
)
def test_budget_errors_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(InputError, match=says):
        ExitBudget.parse(text)
