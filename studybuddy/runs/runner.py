"""One run, from settings to a summary: read inputs, open the output tree and archive, connect to (or
launch) Tor, build the note engine and the workers, run the pipeline. The CLI calls `run`; so can any program.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from studybuddy.config import Settings, parse_host_port
from studybuddy.egress.sessions import ProxyEndpoint
from studybuddy.egress.torlaunch import TorKeeper, TorSetup, resolve_tor
from studybuddy.errors import ConfigError, InputError, StudyBuddyError
from studybuddy.notes.anthropic import AnthropicEngine
from studybuddy.notes.engine import NoteEngine
from studybuddy.notes.offline import OfflineEngine
from studybuddy.notes.ratelimit import RequestLimiter
from studybuddy.runs.admission import Admission
from studybuddy.runs.listing import Plan, plan_videos
from studybuddy.runs.pipeline import Pipeline
from studybuddy.runs.preflight import check_before_run
from studybuddy.runs.progress import ProgressMonitor, ProgressView
from studybuddy.runs.progress_records import Summary
from studybuddy.runs.progress_views import format_summary, make_view
from studybuddy.runs.workers import Pacer, RenewingPacer, RetryPolicy, WorkerFactory
from studybuddy.store.archive import Archive
from studybuddy.store.notewriter import NoteWriter
from studybuddy.text import BadInput
from studybuddy.youtube.inputs import Inputs, read_inputs

if TYPE_CHECKING:
    from studybuddy.proxyspec import ProxySpec

log = logging.getLogger(__name__)
Warn = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    summary: Summary
    bad_inputs: tuple[BadInput, ...]
    fatal: str | None = None  # why the run stopped early (Tor gone, key refused, archive unwritable)
    subjects: tuple[str, ...] = ()  # the subjects --auto-subject chose, one line each
    duplicates: int = 0  # videos named more than once (in the inputs or the lists): taken once

    @property
    def exit_code(self) -> int:
        """0 only when nothing failed: no video, no input line, no early stop."""
        return 1 if self.summary.failed or self.bad_inputs or self.fatal else 0

    def report(self) -> str:
        lines = [bad.message for bad in self.bad_inputs]
        lines.append(format_summary(self.summary))
        lines.extend(self.subjects)
        if self.duplicates:
            lines.append(f"{self.duplicates} duplicate(s) in the input taken once")
        if self.bad_inputs:
            lines.append(f"{len(self.bad_inputs)} input line(s) could not be used (see above)")
        if self.fatal:
            lines.append(f"Stopped early: {self.fatal}. Run the same command again to finish the rest.")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        data = self.summary.to_json()
        data["bad_inputs"] = [
            {"source": bad.source, "text": bad.text, "reason": bad.reason} for bad in self.bad_inputs
        ]
        data["fatal"] = self.fatal
        data["subjects"] = list(self.subjects)
        data["duplicates"] = self.duplicates
        data["exit_code"] = self.exit_code
        return data


def build_engine(settings: Settings) -> NoteEngine | None:
    """The note engine a run uses, or None for transcripts only."""
    if not settings.notes:
        return None
    engine = settings.engine or ("anthropic" if settings.api_key else "offline")
    if engine == "offline":
        if settings.notes_lang:
            log.warning(
                "offline notes are the speaker's own words: --notes-lang %s is ignored", settings.notes_lang
            )
        return OfflineEngine()
    if not settings.api_key:
        raise ConfigError(
            "ANTHROPIC_API_KEY is not set: set it for --engine anthropic, or use --engine offline "
            "or --no-notes"
        )
    limiter = RequestLimiter(settings.notes_concurrency, settings.notes_per_minute)
    return AnthropicEngine(
        api_key=settings.api_key,
        model=settings.model,
        limiter=limiter,
        assessment=settings.assessment,
        max_input_tokens=settings.max_input_tokens,
        notes_lang=settings.notes_lang,
    )


def open_tor(settings: Settings, warn: Warn) -> TorSetup | None:
    """The Tor of this run (None with `--tor off` or proxies only); shows bootstrap progress."""
    if not settings.uses_tor:
        return None
    shown: set[int] = set()

    def progress(percent: int, summary: str) -> None:
        if percent not in shown:
            shown.add(percent)
            warn(f"Tor bootstrap {percent}%: {summary}")

    setup = resolve_tor(
        settings.tor,  # type: ignore[arg-type]  # validated by the CLI's Choice
        socks=ProxyEndpoint.parse(settings.tor_socks),
        control=parse_host_port(settings.tor_control, "--tor-control"),
        password=settings.tor_password,
        tor_config=settings.tor_config,
        on_progress=progress,
    )
    if setup is not None and settings.log_tor_events:
        setup.controller.log_events()
    return setup


@contextmanager
def _pacer(
    setup: TorSetup | None, settings: Settings, archive: Archive, monitor: ProgressMonitor
) -> Iterator[Pacer | None]:
    """The run's pacer: per exit over its Tor, per proxy over the user's proxies, or both; either way
    knowing what earlier runs on this archive learned about the exits and proxies."""
    if setup is None and not settings.uses_proxies:
        yield None
        return
    from studybuddy.egress.reputation import new_reputation
    from studybuddy.proxyspec import is_proxy_key
    from studybuddy.runs.pacing import build_pacer
    from studybuddy.runs.proxypacing import MixedPacer, ProxyPacer

    now = time.time()
    events = archive.exit_events(since=now - settings.per_exit.window_s)
    past_uses = [(key, now - at) for key, event, at in events if event == "use"]
    reputation = new_reputation(settings, archive)
    tor_pacer = proxy_pacer = None
    if setup is not None:
        from studybuddy.egress.circuits import TorExits

        tor_pacer = build_pacer(
            TorExits(setup.controller, setup.socks, private=setup.embedded is not None),
            settings,
            monitor,
            store=archive,
            past_uses=[(key, ago) for key, ago in past_uses if not is_proxy_key(key)],
            on_event=archive.record_exit_event,
            reputation=reputation,
        )
    if settings.uses_proxies:
        proxy_pacer = ProxyPacer(
            settings.proxies,
            settings,
            monitor,
            reputation,
            workers=settings.thread_count,
            past_uses=past_uses,
            on_event=archive.record_exit_event,
        )
    pacer: Pacer
    if proxy_pacer is None:
        assert tor_pacer is not None  # without proxies there is a Tor (see the first lines)
        pacer = tor_pacer
    else:
        pacer = proxy_pacer if tor_pacer is None else MixedPacer(tor_pacer, proxy_pacer)
    try:
        yield pacer
    finally:
        pacer.close()


def egress_per_worker(settings: Settings) -> Callable[[int], ProxySpec | None] | None:
    """Where each worker starts (None: every worker on Tor). On proxies alone, worker i starts on proxy
    i mod P. With `--egress tor,proxies`, one worker per proxy (at most all workers but one) works on the
    proxies and the others on Tor, whose many exits keep them busy. A worker on proxies moves between
    them as `ProxyPacer` decides; a worker on Tor stays on Tor."""
    if not settings.uses_proxies:
        return None
    proxies = settings.proxies
    if not settings.uses_tor:
        return lambda index: proxies[index % len(proxies)]
    on_proxies = min(len(proxies), settings.thread_count - 1)
    return lambda index: proxies[index] if 0 <= index < on_proxies else None


def _needs_youtube(inputs: Inputs, archive: Archive, admission: Admission) -> bool:
    """Whether anything must be fetched: a playlist or channel to list, or a video the archive has not
    settled. A rerun with every video done, or input with only bad lines, starts no Tor."""
    if inputs.collections:
        return True
    now = time.time()
    found = admission.look_up(archive, inputs.video_ids)
    return any(
        vid not in found.done and admission.skip_reason(found.rows.get(vid), now) is None
        for vid in inputs.video_ids
    )


def _connect(
    stack: ExitStack, settings: Settings, say: Warn, tor: TorKeeper | None
) -> tuple[Settings, TorSetup | None]:
    """Before anything is fetched: the settings with the proxies that work, and the Tor of the run (from
    `tor`, else one of its own, closed with `stack`)."""
    settings = check_before_run(settings, say)
    setup = tor.get() if tor is not None else open_tor(settings, say)
    if setup is not None and tor is None:
        stack.enter_context(setup)
    return settings, setup


def _egress(
    stack: ExitStack, setup: TorSetup | None, settings: Settings, archive: Archive, monitor: ProgressMonitor
) -> tuple[Pacer | None, WorkerFactory, RetryPolicy]:
    """How the run reaches YouTube: its pacer (closed with `stack`), its workers' factory, its retries."""
    pacer = stack.enter_context(_pacer(setup, settings, archive, monitor))
    worker_factory = WorkerFactory(
        settings, proxy=setup.socks if setup else None, egress_for=egress_per_worker(settings)
    )
    return pacer, worker_factory, RetryPolicy.for_settings(settings)


def list_inputs(settings: Settings, inputs: Inputs, archive: Archive, *, warn: Warn) -> Plan:
    """The videos `inputs` name, with their playlists and channels listed as a run lists them (the same
    egress, pacing and retries; `--limit`, `--since`, `--order`), and nothing processed: what `enqueue`
    queues. Tor is started (or proxies checked) only when there is a list to read."""
    with ExitStack() as stack:
        setup = None
        if inputs.collections:
            settings, setup = _connect(stack, settings, warn, None)
        monitor = ProgressMonitor(make_view(json_output=True))
        stack.callback(monitor.close)
        pacer, worker_factory, retry = _egress(stack, setup, settings, archive, monitor)
        return plan_videos(
            inputs,
            settings,
            worker_factory=worker_factory,
            pacer=pacer or RenewingPacer(),
            retry=retry,
            stop=threading.Event(),
        )


def run(
    settings: Settings,
    urls: Sequence[str],
    files: Sequence[Path],
    *,
    json_output: bool = False,
    warn: Warn | None = None,
    admission: Admission | None = None,
    stop: threading.Event | None = None,
    tor: TorKeeper | None = None,
    view: ProgressView | None = None,
    run_id: str | None = None,
) -> RunOutcome:
    """Process the videos named by `urls` and `files`; bad input lines are reported, the rest still run.

    `admission` chooses which videos to take on (default: by `settings.force`); setting `stop` finishes the
    videos in progress and starts no more (watch mode stops its checks so). With `tor`, the run takes its
    Tor from there and leaves it open (watch keeps one Tor for all its checks); else it opens and closes its
    own. `view` shows the progress instead of the terminal's view (the web UI's live page).
    `run_id` names the run in its claims (`work` claims videos for it before the run).
    """
    say = warn or log.warning
    inputs = read_inputs(urls, files)
    for bad in inputs.bad:
        say(bad.message)
    writer = NoteWriter.for_settings(settings)
    writer.output.ensure_writable()
    for bad in settings.proxy_problems:
        say(bad.message)
    engine = build_engine(settings)
    if settings.egress == "auto" and settings.proxies and settings.tor not in ("auto", "off"):
        raise InputError(
            f"proxies and --tor {settings.tor}: say which to use (--egress proxies, or --egress tor,proxies)"
        )
    admission = admission or Admission(force=settings.force)
    with ExitStack() as stack:
        archive = stack.enter_context(Archive.open(settings.output, settings.archive))
        needs_youtube = _needs_youtube(inputs, archive, admission)
        if engine is not None:
            stack.callback(engine.close)
            if needs_youtube:
                engine.check()  # a refused key or a model that cannot write notes: stop before YouTube
        setup = None
        if needs_youtube:
            settings, setup = _connect(stack, settings, say, tor)
        monitor = ProgressMonitor(view or make_view(json_output=json_output), all_outcomes=json_output)
        pacer, worker_factory, retry = _egress(stack, setup, settings, archive, monitor)
        pipeline = Pipeline.from_settings(
            settings,
            archive,
            engine=engine,
            monitor=monitor,
            worker_factory=worker_factory,
            pacer=pacer,
            writer=writer,
            admission=admission,
            stop_event=stop,
            run_id=run_id,
        )
        fatal = None
        try:
            plan = plan_videos(
                inputs,
                settings,
                worker_factory=worker_factory,
                pacer=pacer or RenewingPacer(),
                retry=retry,
                stop=pipeline.stop_event,
            )
            for bad in plan.bad:
                say(bad.message)
            summary = pipeline.run(plan.video_ids, unavailable=plan.unavailable)
        except StudyBuddyError as exc:
            if pipeline.started is False:
                raise  # nothing ran yet: one line is the whole story
            fatal, summary = str(exc), monitor.summary()
        finally:
            monitor.close()
    unusable = (*settings.proxy_problems, *inputs.bad, *plan.bad)
    return RunOutcome(summary, unusable, fatal, writer.subjects_chosen(), plan.duplicates)
