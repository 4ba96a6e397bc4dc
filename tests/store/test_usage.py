"""Cost and usage: the price table, price files, totals over an archive, and `archive stats`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from studybuddy.cli.main import cli
from studybuddy.errors import ErrorKind, InputError
from studybuddy.models import Usage
from studybuddy.store.archive import Archive
from studybuddy.store.usage import DEFAULT_TABLE, ModelPrice, PriceTable, format_report, usage_report

MILLION = 1_000_000


def record(
    archive: Archive, video_id: str, model: str | None, usage: Usage, batch_id: str | None = None
) -> None:
    archive.record_done(
        video_id,
        title=video_id,
        channel=None,
        note_path=Path(f"{video_id}.md"),
        transcript_path=None,
        usage=usage,
        model=model,
        exit_fingerprint=None,
        elapsed_s=1.0,
        batch_id=batch_id,
    )


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-sonnet-4-5", ModelPrice(3.0, 15.0, 3.75, 0.30)),
        ("claude-sonnet-4-5-20250929", ModelPrice(3.0, 15.0, 3.75, 0.30)),
        ("claude-opus-4-1-20250805", ModelPrice(15.0, 75.0, 18.75, 1.50)),
        ("claude-opus-4-5", ModelPrice(5.0, 25.0, 6.25, 0.50)),
        ("claude-haiku-4-5-20251001", ModelPrice(1.0, 5.0, 1.25, 0.10)),
        ("claude-3-5-haiku-latest", ModelPrice(0.80, 4.0, 1.0, 0.08)),
    ],
)
def test_list_prices_match_snapshot_ids(model: str, expected: ModelPrice) -> None:
    price = DEFAULT_TABLE.price_of(model)
    assert price == expected


@pytest.mark.parametrize("model", ["claude-opus-4-9", "claude-sonnet-4-5-preview", "gpt-4o", "claude-test-1"])
def test_unknown_models_have_no_price_rather_than_a_guess(model: str) -> None:
    assert DEFAULT_TABLE.price_of(model) is None


def test_report_counts_statuses_tokens_and_halves_batched_notes(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as archive:
        record(archive, "a", "claude-sonnet-4-5", Usage(MILLION, MILLION, MILLION, MILLION))
        record(archive, "b", "claude-sonnet-4-5", Usage(MILLION, MILLION, 0, 0), batch_id="msgbatch_1")
        record(archive, "c", "claude-test-1", Usage(10, 20, 0, 0))
        record(archive, "d", None, Usage())  # a transcript-only run: no model, no tokens
        archive.record_failed("e", ErrorKind.PERMANENT, "no transcript")
        archive.record_failed("f", ErrorKind.NOTES, "cut off")
        archive.start("g")
        report = usage_report(archive.rows())

    assert (report.videos, report.done, report.running) == (7, 4, 1)
    assert report.failed_by_kind == {"notes": 1, "permanent": 1}
    assert report.tokens.to_json() == {
        "input": 2 * MILLION + 10,
        "output": 2 * MILLION + 20,
        "cache_read": MILLION,
        "cache_write": MILLION,
    }
    sonnet, unknown = report.models
    # a: 3 + 15 + 0.30 + 3.75; b (batch): (3 + 15) / 2
    assert sonnet.cost_usd == pytest.approx(22.05 + 9.0)
    assert (sonnet.notes, sonnet.batched_notes) == (2, 1)
    assert unknown.cost_usd is None and report.unpriced_models == ("claude-test-1",)
    assert report.cost_usd == pytest.approx(31.05)
    text = format_report(report)
    assert "estimated cost: $31.0500" in text
    assert "no price known for: claude-test-1" in text
    assert "1 by batch (half price)" in text


def test_price_file_overrides_and_adds_models(tmp_path: Path) -> None:
    toml_file = tmp_path / "prices.toml"
    toml_file.write_text(
        '[models."claude-test-1"]\ninput = 2\noutput = 8\n\n'
        '[models."claude-sonnet-4-5"]\ninput = 1\noutput = 2\ncache_read = 0\n'
    )
    table = DEFAULT_TABLE.with_file(toml_file)
    assert table.price_of("claude-test-1") == ModelPrice(2.0, 8.0, 2.5, 0.2)
    assert table.price_of("claude-sonnet-4-5-20250929") == ModelPrice(1.0, 2.0, 1.25, 0.0)
    assert table.price_of("claude-opus-4-5") == DEFAULT_TABLE.price_of("claude-opus-4-5")
    assert str(toml_file) in table.source

    json_file = tmp_path / "prices.json"
    json_file.write_text(json.dumps({"models": {"m": {"input": 1, "output": 1, "cache_write": 9}}}))
    assert PriceTable({}).with_file(json_file).price_of("m") == ModelPrice(1.0, 1.0, 9.0, 0.1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("models = 3", 'expected a "models" table'),
        ('[models."m"]\ninput = 1\n', "both input and output"),
        ('[models."m"]\ninput = 1\noutput = "ten"\n', "output must be a number"),
        ('[models."m"]\ninput = -1\noutput = 1\n', "input must be a number"),
        ('[models."m"]\ninput = 1\noutput = 1\nbatch = 1\n', "unknown price 'batch'"),
        ("[models\n", "not a valid price file"),
    ],
)
def test_bad_price_files_name_the_file_and_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as caught:
        DEFAULT_TABLE.with_file(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_archive_stats_command_prices_batch_notes_at_half(tmp_path: Path) -> None:
    with Archive.open(tmp_path) as archive:
        record(archive, "a", "claude-test-1", Usage(MILLION, MILLION))
        record(archive, "b", "claude-test-1", Usage(MILLION, MILLION), batch_id="msgbatch_1")
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"claude-test-1": {"input": 2, "output": 10}}}))

    result = CliRunner().invoke(
        cli, ["archive", "stats", "-o", str(tmp_path), "--prices", str(prices), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["cost_usd"] == pytest.approx(12.0 + 6.0)
    assert data["models"][0]["batched_notes"] == 1 and data["unpriced_models"] == []

    plain = CliRunner().invoke(cli, ["archive", "stats", "-o", str(tmp_path)])
    assert plain.exit_code == 0
    assert "no price known for: claude-test-1" in plain.output and "estimated cost: $0.0000" in plain.output


def test_archive_stats_without_an_archive_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["archive", "stats", "-o", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert "no archive here" in result.output and "Traceback" not in result.output
