"""One run, from settings to a summary: read inputs, open the output tree and archive, build the note engine
and the workers, run the pipeline. The CLI calls `run`; so can any program.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .archive import Archive
from .config import Settings
from .errors import ConfigError
from .inputs import BadInput, read_inputs
from .notes import AnthropicEngine, NoteEngine, RequestLimiter
from .output import OutputTree
from .pipeline import Pipeline, WorkerFactory
from .progress import ProgressMonitor, Summary, format_summary, make_view
from .sessions import ProxyEndpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    summary: Summary
    bad_inputs: tuple[BadInput, ...]

    @property
    def exit_code(self) -> int:
        """0 only when nothing failed: no video and no input line."""
        return 1 if self.summary.failed or self.bad_inputs else 0

    def report(self) -> str:
        lines = [bad.message for bad in self.bad_inputs]
        lines.append(format_summary(self.summary))
        if self.bad_inputs:
            lines.append(f"{len(self.bad_inputs)} input line(s) could not be used (see above)")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        data = self.summary.to_json()
        data["bad_inputs"] = [
            {"source": bad.source, "text": bad.text, "reason": bad.reason} for bad in self.bad_inputs
        ]
        data["exit_code"] = self.exit_code
        return data


def build_engine(settings: Settings) -> NoteEngine | None:
    """The note engine a run uses, or None for transcripts only. Checks the key before any work."""
    if not settings.notes:
        return None
    if not settings.api_key:
        raise ConfigError("ANTHROPIC_API_KEY is not set: set it to write notes, or use --no-notes")
    limiter = RequestLimiter(settings.notes_concurrency, settings.notes_per_minute)
    return AnthropicEngine(api_key=settings.api_key, model=settings.model, limiter=limiter)


def run(
    settings: Settings,
    urls: Sequence[str],
    files: Sequence[Path],
    *,
    json_output: bool = False,
    warn: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Process the videos named by `urls` and `files`; bad input lines are reported, the rest still run."""
    inputs = read_inputs(urls, files)
    for bad in inputs.bad:
        (warn or log.warning)(bad.message)
    output = OutputTree(settings.output)
    output.ensure_writable()
    engine = build_engine(settings)
    proxy = ProxyEndpoint.parse(settings.proxy) if settings.proxy else None
    with Archive.open(settings.output) as archive:
        monitor = ProgressMonitor(make_view(json_output=json_output))
        pipeline = Pipeline(
            settings,
            archive=archive,
            output=output,
            engine=engine,
            monitor=monitor,
            worker_factory=WorkerFactory(settings, proxy=proxy),
        )
        try:
            summary = pipeline.run(inputs.video_ids)
        finally:
            monitor.close()
            if engine is not None:
                engine.close()
    return RunOutcome(summary, tuple(inputs.bad))
