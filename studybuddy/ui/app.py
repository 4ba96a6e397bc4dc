"""The web app: Starlette routes over the library, Jinja2 pages rendered on the server.

Every page reads without JavaScript; a small bundled script (`static/live.js`) swaps in the run page's live
parts from the Server-Sent Events feed. Requests never run videos: they hand runs to the `RunManager`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from studybuddy.config import EGRESS, Settings
from studybuddy.errors import ErrorKind, StudyBuddyError
from studybuddy.runs.admission import retry_selection
from studybuddy.runs.progress_views import format_seconds
from studybuddy.store.archive import Archive
from studybuddy.store.archive_rows import Status
from studybuddy.store.render import format_clock
from studybuddy.ui import charts
from studybuddy.ui.forms import ENGINES, TOR_MODES, RunForm, read_run_form
from studybuddy.ui.guard import TokenGuard
from studybuddy.ui.library import Library
from studybuddy.ui.pages import tor_lines, usage_lines
from studybuddy.ui.runs import FolderBusy, Run, RunManager, Subscriber
from studybuddy.ui.watching import WatchService

LIVE_ROWS = 50  # video rows on the run page, however many videos the run has
MIN_UPDATE_S = 0.1  # at most 10 updates a second per tab
HEARTBEAT_S = 1.0  # clocks and circuit ages move without events
BLOCKS_TTL_S = 2.0


@dataclass
class UiConfig:
    settings: Settings  # the server's settings: the form's defaults and everything it does not show
    token: str
    hosts: frozenset[str] | None  # None: any Host (a wildcard address)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("studybuddy.ui", "templates"), autoescape=select_autoescape(), auto_reload=False
    )
    env.globals.update(
        clock=format_seconds,
        engines=ENGINES,
        tor_modes=TOR_MODES,
        egress_choices=EGRESS,
        kinds=list(ErrorKind),
    )
    for name in env.list_templates():  # compiled now, not in the first request of each page
        env.get_template(name)
    return env


class Pages:
    """The routes' handlers, sharing the server's settings, runs and templates."""

    def __init__(self, config: UiConfig, manager: RunManager, watch: WatchService) -> None:
        self.config = config
        self.manager = manager
        self.watch = watch
        self.env = _environment()
        self._blocks: dict[str, tuple[float, list[tuple[str, int]]]] = {}
        self._live: dict[str, tuple[tuple[int, int], str]] = {}

    def page(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(output=self.config.settings.output, **context)
        return HTMLResponse(html, status_code=status_code)

    async def home(self, request: Request) -> Response:
        form = RunForm.from_settings(self.config.settings)
        return self.page("index.html", form=form, runs=self.manager.runs())

    async def start_run(self, request: Request) -> Response:
        async with request.form(max_part_size=10 * 1024 * 1024 + 1) as data:
            form, wanted = await read_run_form(data, self.config.settings)
        if wanted is None:
            return self.page("index.html", 400, form=form, runs=self.manager.runs())
        label = f"{wanted.videos} video(s), {wanted.collections} list(s)"
        try:
            run = self.manager.start(
                wanted.settings, [], wanted.files, label=label, cleanup=wanted.folder.cleanup
            )
        except FolderBusy as exc:
            wanted.folder.cleanup()
            form.errors["output"] = str(exc)
            return self.page("index.html", 409, form=form, runs=self.manager.runs(), busy=exc.run_id)
        return RedirectResponse(f"/runs/{run.id}", status_code=303)

    def _run(self, request: Request) -> Run | None:
        return self.manager.get(str(request.path_params["run_id"]))

    async def run_page(self, request: Request) -> Response:
        run = self._run(request)
        if run is None:
            return PlainTextResponse("No such run (runs are kept while the server runs).\n", 404)
        return self.page("run.html", run=run, live=Markup(self.live_html(run)))  # noqa: S704 - our template

    async def stop_run(self, request: Request) -> Response:
        run = self._run(request)
        if run is None:
            return PlainTextResponse("No such run.\n", 404)
        run.stop.set()
        run.view.changed()
        return RedirectResponse(f"/runs/{run.id}", status_code=303)

    async def events(self, request: Request) -> Response:
        run = self._run(request)
        if run is None:
            return PlainTextResponse("No such run.\n", 404)
        return StreamingResponse(self._feed(run), media_type="text/event-stream")

    async def _feed(self, run: Run) -> AsyncIterator[str]:
        """One tab's updates: woken by the run's events, coalesced to at most one per MIN_UPDATE_S."""
        subscriber = Subscriber(asyncio.get_running_loop())
        run.view.subscribe(subscriber)
        try:
            while True:
                sent_at = time.monotonic()
                ended = run.ended.is_set()
                html = await run_in_threadpool(self.live_html, run)
                yield f"event: live\ndata: {json.dumps({'html': html})}\n\n"
                if ended:
                    yield "event: end\ndata: {}\n\n"
                    return
                await subscriber.wait(HEARTBEAT_S)
                await asyncio.sleep(max(0.0, sent_at + MIN_UPDATE_S - time.monotonic()))
        finally:
            run.view.unsubscribe(subscriber)

    def live_html(self, run: Run) -> str:
        """The live part of a run page, rendered once per change (and per second) for every tab."""
        key = (run.view.version, int(time.monotonic()))
        cached = self._live.get(run.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        snapshot = run.view.snapshot(LIVE_ROWS)
        total = snapshot.total if snapshot else 0
        html = self.env.get_template(
            "_live.html"
        ).render(
            run=run,
            snap=snapshot,
            finished_chart=Markup(charts.finished_chart(run.view.points(), total)),  # noqa: S704 - numbers
            blocks_chart=Markup(charts.blocks_chart(self._exit_blocks(run))),  # noqa: S704 - escaped
            warnings=list(run.warnings)[-10:],
        )
        self._live[run.id] = (key, html)
        return html

    def _exit_blocks(self, run: Run) -> list[tuple[str, int]]:
        """Blocked answers per exit in this run, from the archive (read at most every BLOCKS_TTL_S)."""
        now = time.monotonic()
        cached = self._blocks.get(run.id)
        if cached is not None and now - cached[0] < BLOCKS_TTL_S:
            return cached[1]
        counts: dict[str, int] = {}
        if (run.output / Archive.FILENAME).is_file():
            with Archive.open(run.output) as archive:
                for fingerprint, event, _at in archive.exit_events(since=run.started_at):
                    if event == "block":
                        counts[fingerprint[:8]] = counts.get(fingerprint[:8], 0) + 1
        blocks = sorted(counts.items())
        self._blocks[run.id] = (now, blocks)
        return blocks

    def _folder(self, request: Request) -> Path:
        return Path(request.query_params.get("output") or self.config.settings.output).expanduser()

    async def archive(self, request: Request) -> Response:
        output = self._folder(request)
        status, kind = request.query_params.get("status", ""), request.query_params.get("kind", "")
        query = request.query_params.get("q", "").strip()
        problem, rows = None, []
        if status and status not in list(Status):
            problem = f"Status {status!r}: choose one of {', '.join(Status)}."
        elif kind and kind not in list(ErrorKind):
            problem = f"Kind {kind!r}: choose one of {', '.join(ErrorKind)}."
        elif not (output / Archive.FILENAME).is_file():
            problem = f"{output}: no archive here yet (start a run with this output folder first)."
        else:
            with Archive.open(output) as db:
                rows = db.rows(Status(status) if status else None, ErrorKind(kind) if kind else None)
            if query:
                rows = [row for row in rows if query.lower() in (row.title or "").lower()]
        return self.page(
            "archive.html",
            400 if problem and (status or kind) else 200,
            rows=rows,
            problem=problem,
            folder=output,
            status=status,
            kind=kind,
            query=query,
            busy=self.manager.busy(output),
            statuses=list(Status),
        )

    async def retry(self, request: Request) -> Response:
        data = await request.form()
        output = Path(str(data.get("output") or self.config.settings.output)).expanduser()
        kind, video_id = str(data.get("kind", "all")), str(data.get("video_id", "")) or None
        if kind != "all" and kind not in list(ErrorKind):
            return PlainTextResponse(f"Kind {kind!r}: not a failure kind.\n", 400)
        if not (output / Archive.FILENAME).is_file():
            return PlainTextResponse(f"{output}: no archive here.\n", 400)
        with Archive.open(output) as archive:
            video_ids, admission = retry_selection(archive, kind, video_id)
        if not video_ids:
            return PlainTextResponse(f"Nothing to retry in {output} ({video_id or kind}).\n", 400)
        settings = dataclasses.replace(self.config.settings, output=output)
        label = f"retry of {len(video_ids)} video(s)"
        try:
            run = self.manager.start(settings, video_ids, [], label=label, admission=admission)
        except FolderBusy as exc:
            return PlainTextResponse(f"{exc}\n", 409)
        return RedirectResponse(f"/runs/{run.id}", status_code=303)

    async def notes(self, request: Request) -> Response:
        library = Library(self._folder(request))
        return self.page("notes.html", subjects=library.by_subject(), root=library.root)

    async def note(self, request: Request) -> Response:
        library = Library(self.config.settings.output)
        note = library.render(str(request.path_params["path"]))
        if note is None:
            return PlainTextResponse("No such note in the output folder.\n", 404)
        return self.page("note.html", note=note, body=Markup(note.html))  # noqa: S704 - markdown-it, html off

    async def video(self, request: Request) -> Response:
        video_id = str(request.path_params["video_id"])
        raw = request.query_params.get("t", "0")
        second = int(raw) if raw.isdigit() else 0
        output = self.config.settings.output
        row = None
        if (output / Archive.FILENAME).is_file():
            with Archive.open(output) as archive:
                row = archive.get(video_id)
        captions = Library(output).captions(row.transcript_path if row else None)
        current = max((c.seconds for c in captions if c.seconds <= second), default=None)
        return self.page(
            "video.html",
            video_id=video_id,
            second=second,
            clock=format_clock(second),
            row=row,
            captions=captions,
            current=current,
        )

    async def watch_page(self, request: Request) -> Response:
        return self.page("watch.html", watch=self.watch.state(), problem=None)

    async def watch_change(self, request: Request) -> Response:
        data = await request.form()
        try:
            if "remove" in data:
                self.watch.remove(str(data["remove"]))
            else:
                self.watch.add(str(data.get("url", "")))
        except StudyBuddyError as exc:
            return self.page("watch.html", 400, watch=self.watch.state(), problem=str(exc))
        return RedirectResponse("/watch", status_code=303)

    async def tor(self, request: Request) -> Response:
        lines = await run_in_threadpool(tor_lines, self.config.settings)
        return self.page("text.html", heading="Tor", lines=lines)

    async def usage(self, request: Request) -> Response:
        lines = await run_in_threadpool(usage_lines, self._folder(request))
        return self.page("text.html", heading="Usage", lines=lines)


def create_app(
    config: UiConfig, manager: RunManager, watch: WatchService, *, on_shutdown: Callable[[], Awaitable[None]]
) -> Starlette:
    pages = Pages(config, manager, watch)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await on_shutdown()

    routes = [
        Route("/", pages.home),
        Route("/runs", pages.start_run, methods=["POST"]),
        Route("/runs/{run_id}", pages.run_page),
        Route("/runs/{run_id}/events", pages.events),
        Route("/runs/{run_id}/stop", pages.stop_run, methods=["POST"]),
        Route("/archive", pages.archive),
        Route("/archive/retry", pages.retry, methods=["POST"]),
        Route("/notes", pages.notes),
        Route("/notes/{path:path}", pages.note),
        Route("/video/{video_id}", pages.video),
        Route("/watch", pages.watch_page),
        Route("/watch", pages.watch_change, methods=["POST"]),
        Route("/tor", pages.tor),
        Route("/usage", pages.usage),
        Mount("/static", StaticFiles(packages=[("studybuddy.ui", "static")]), name="static"),
    ]
    middleware = [Middleware(TokenGuard, token=config.token, hosts=config.hosts)]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
