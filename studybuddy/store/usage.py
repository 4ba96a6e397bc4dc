"""What the notes cost: token totals from the archive and an estimated price in USD.

`DEFAULT_PRICES` holds Anthropic's list prices (USD per million tokens) as published on
https://platform.claude.com/docs/en/about-claude/pricing, read on `PRICES_AS_OF`. A model is priced
when its id is a table key, or a key followed by a `-YYYYMMDD` snapshot date or `-latest`; any other
model is reported as unpriced, never guessed. Users override or extend the table with a TOML or JSON
file (`archive stats --prices FILE`):

    [models."claude-sonnet-4-5"]
    input = 3.0           # required
    output = 15.0         # required
    cache_write = 3.75    # optional: 1.25 x input (the 5-minute cache write)
    cache_read = 0.30     # optional: 0.1 x input (a cache hit)

Notes written through the Message Batches API cost half (`BATCH_DISCOUNT`), cache tokens included.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studybuddy.errors import InputError
from studybuddy.store.archive_rows import ArchiveRow, Status

PRICES_AS_OF = "2026-11-24"
PRICES_SOURCE = "https://platform.claude.com/docs/en/about-claude/pricing"
BATCH_DISCOUNT = 0.5
CACHE_WRITE_FACTOR = 1.25  # the 5-minute cache write, relative to base input
CACHE_READ_FACTOR = 0.1
_PER_TOKEN = 1 / 1_000_000
_SNAPSHOT_SUFFIX = re.compile(r"-(\d{8}|latest)$")


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens of one model."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    @classmethod
    def standard(cls, input_price: float, output_price: float) -> ModelPrice:
        """A price with Anthropic's usual cache multipliers (write 1.25x, read 0.1x the input price)."""
        cache_write, cache_read = input_price * CACHE_WRITE_FACTOR, input_price * CACHE_READ_FACTOR
        return cls(input_price, output_price, round(cache_write, 6), round(cache_read, 6))


_OPUS_4_5 = ModelPrice(5.0, 25.0, 6.25, 0.50)
_OPUS_4 = ModelPrice(15.0, 75.0, 18.75, 1.50)
_SONNET_4 = ModelPrice(3.0, 15.0, 3.75, 0.30)
_SONNET_5 = ModelPrice(2.0, 10.0, 2.50, 0.20)

DEFAULT_PRICES: dict[str, ModelPrice] = {
    "claude-opus-5": _OPUS_4_5,
    "claude-opus-4-8": _OPUS_4_5,
    "claude-opus-4-7": _OPUS_4_5,
    "claude-opus-4-6": _OPUS_4_5,
    "claude-opus-4-5": _OPUS_4_5,
    "claude-opus-4-1": _OPUS_4,
    "claude-opus-4-0": _OPUS_4,
    "claude-opus-4": _OPUS_4,
    "claude-sonnet-5": _SONNET_5,
    "claude-sonnet-4-6": _SONNET_4,
    "claude-sonnet-4-5": _SONNET_4,
    "claude-sonnet-4-0": _SONNET_4,
    "claude-sonnet-4": _SONNET_4,
    "claude-3-7-sonnet": _SONNET_4,
    "claude-haiku-4-5": ModelPrice(1.0, 5.0, 1.25, 0.10),
    "claude-3-5-haiku": ModelPrice(0.80, 4.0, 1.0, 0.08),
    "claude-3-haiku": ModelPrice(0.25, 1.25, 0.30, 0.03),
}


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices by model id; `source` says where they come from (shown with the estimate)."""

    prices: Mapping[str, ModelPrice]
    source: str = f"Anthropic list prices of {PRICES_AS_OF}"

    def price_of(self, model: str) -> ModelPrice | None:
        """The price of `model` (`claude-x`, `claude-x-20250929`, `claude-x-latest`), or None if unknown."""
        found = self.prices.get(model)
        if found is None:
            found = self.prices.get(_SNAPSHOT_SUFFIX.sub("", model))
        return found

    def with_file(self, path: Path) -> PriceTable:
        """This table with the models of a TOML or JSON price file added or replaced."""
        overrides = load_price_file(path)
        return PriceTable({**self.prices, **overrides}, f"{self.source}, overridden by {path}")


DEFAULT_TABLE = PriceTable(DEFAULT_PRICES)


def load_price_file(path: Path) -> dict[str, ModelPrice]:
    """Read `[models."ID"]` entries (input, output, optional cache_write and cache_read) from TOML or JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the price file ({exc.strerror or exc})") from exc
    try:
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not a valid price file ({_first_line(exc)})") from exc
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or not models:
        raise InputError(f'{path}: expected a "models" table of model ids, e.g. [models."claude-sonnet-4-5"]')
    return {str(model): _model_price(path, str(model), entry) for model, entry in models.items()}


def _model_price(path: Path, model: str, entry: object) -> ModelPrice:
    if not isinstance(entry, dict):
        raise InputError(f"{path}: model {model!r}: expected input = ... and output = ... prices")
    values: dict[str, float] = {}
    for key, value in entry.items():
        if key not in ModelPrice.__dataclass_fields__:
            raise InputError(f"{path}: model {model!r}: unknown price {key!r}")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InputError(f"{path}: model {model!r}: {key} must be a number of USD per million tokens")
        values[key] = float(value)
    if "input" not in values or "output" not in values:
        raise InputError(f"{path}: model {model!r}: both input and output prices are required")
    standard = ModelPrice.standard(values["input"], values["output"])
    return ModelPrice(
        values["input"],
        values["output"],
        values.get("cache_write", standard.cache_write),
        values.get("cache_read", standard.cache_read),
    )


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__


@dataclass(slots=True)
class Tokens:
    """Token counts of one or more notes."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def add(self, row: ArchiveRow) -> None:
        self.input += row.input_tokens or 0
        self.output += row.output_tokens or 0
        self.cache_read += row.cache_read_tokens or 0
        self.cache_write += row.cache_write_tokens or 0

    def cost(self, price: ModelPrice) -> float:
        return _PER_TOKEN * (
            self.input * price.input
            + self.output * price.output
            + self.cache_read * price.cache_read
            + self.cache_write * price.cache_write
        )

    def to_json(self) -> dict[str, int]:
        return {
            "input": self.input,
            "output": self.output,
            "cache_read": self.cache_read,
            "cache_write": self.cache_write,
        }


@dataclass(slots=True)
class ModelUsage:
    """The notes one model wrote: how many, their tokens, and their cost (None when the model is unpriced)."""

    model: str
    notes: int = 0
    batched_notes: int = 0
    tokens: Tokens = field(default_factory=Tokens)
    cost_usd: float | None = 0.0


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Totals over an archive, for `archive stats`."""

    videos: int
    done: int
    running: int
    failed_by_kind: dict[str, int]
    tokens: Tokens
    models: tuple[ModelUsage, ...]
    price_source: str

    @property
    def cost_usd(self) -> float:
        """The estimated cost of the priced models."""
        return sum(model.cost_usd or 0.0 for model in self.models)

    @property
    def unpriced_models(self) -> tuple[str, ...]:
        return tuple(model.model for model in self.models if model.cost_usd is None)

    def to_json(self) -> dict[str, object]:
        return {
            "videos": self.videos,
            "done": self.done,
            "running": self.running,
            "failed": sum(self.failed_by_kind.values()),
            "failed_by_kind": dict(self.failed_by_kind),
            "tokens": self.tokens.to_json(),
            "models": [
                {
                    "model": model.model,
                    "notes": model.notes,
                    "batched_notes": model.batched_notes,
                    "tokens": model.tokens.to_json(),
                    "cost_usd": None if model.cost_usd is None else round(model.cost_usd, 6),
                }
                for model in self.models
            ],
            "cost_usd": round(self.cost_usd, 6),
            "unpriced_models": list(self.unpriced_models),
            "price_source": self.price_source,
        }


def usage_report(rows: Iterable[ArchiveRow], table: PriceTable = DEFAULT_TABLE) -> UsageReport:
    """Count videos by status and failure kind, and tokens and estimated cost by model."""
    statuses: Counter[Status] = Counter()
    failed_by_kind: Counter[str] = Counter()
    totals = Tokens()
    models: dict[str, ModelUsage] = {}
    for row in rows:
        statuses[row.status] += 1
        if row.status is Status.FAILED:
            failed_by_kind[str(row.error_kind or "unknown")] += 1
        if row.model is None:
            continue
        totals.add(row)
        usage = models.setdefault(row.model, ModelUsage(row.model))
        _add_note(usage, row, table.price_of(row.model))
    return UsageReport(
        videos=sum(statuses.values()),
        done=statuses[Status.DONE],
        running=statuses[Status.RUNNING],
        failed_by_kind=dict(sorted(failed_by_kind.items())),
        tokens=totals,
        models=tuple(sorted(models.values(), key=lambda model: model.model)),
        price_source=table.source,
    )


def _add_note(usage: ModelUsage, row: ArchiveRow, price: ModelPrice | None) -> None:
    note = Tokens()
    note.add(row)
    usage.notes += 1
    usage.tokens.add(row)
    batched = row.batch_id is not None
    usage.batched_notes += batched
    if price is None or usage.cost_usd is None:
        usage.cost_usd = None
        return
    usage.cost_usd += note.cost(price) * (BATCH_DISCOUNT if batched else 1.0)


def format_report(report: UsageReport) -> str:
    """The report as a few aligned lines for a terminal."""
    failed = sum(report.failed_by_kind.values())
    kinds = ", ".join(f"{kind} {count}" for kind, count in report.failed_by_kind.items())
    lines = [
        f"videos: {report.videos}  done: {report.done}  running: {report.running}  failed: {failed}"
        + (f" ({kinds})" if kinds else ""),
        f"tokens: {_token_line(report.tokens)}",
    ]
    for model in report.models:
        cost = "no price known" if model.cost_usd is None else f"${model.cost_usd:,.4f}"
        batched = f", {model.batched_notes} by batch (half price)" if model.batched_notes else ""
        lines.append(f"  {model.model}: {model.notes} note(s){batched}; {_token_line(model.tokens)}; {cost}")
    lines.append(f"estimated cost: ${report.cost_usd:,.4f} ({report.price_source})")
    if report.unpriced_models:
        names = ", ".join(report.unpriced_models)
        lines.append(f"not included, no price known for: {names} (add them with --prices FILE)")
    return "\n".join(lines)


def _token_line(tokens: Tokens) -> str:
    return (
        f"{tokens.input:,} input, {tokens.output:,} output, "
        f"{tokens.cache_write:,} cache write, {tokens.cache_read:,} cache read"
    )
