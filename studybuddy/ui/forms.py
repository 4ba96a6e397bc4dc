"""The new-run form: its values, their checks, and the input lines read as the CLI reads `--file`.

`read_run_form` turns a posted form into a `RunRequest` (settings over the server's own, and the input
files kept in a temporary folder for the run) or into the form again with one message per bad field and
one per bad line (`pasted:3: not a YouTube video URL: 'x'`), as the CLI reports them.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from starlette.datastructures import FormData, UploadFile

from studybuddy.config import Settings, check_egress, parse_languages
from studybuddy.errors import StudyBuddyError
from studybuddy.proxyspec import ProxySpec, parse_proxy
from studybuddy.store.output import OutputTree, safe_filename
from studybuddy.youtube.inputs import read_inputs

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
PASTED = "pasted"
ENGINES = ("", "anthropic", "offline")
TOR_MODES = ("auto", "system", "embedded", "off")
_BINARY_PROBE = 8192


@dataclass
class RunForm:
    """The form's values (as typed, to show again) and what is wrong with them."""

    urls: str = ""
    output: str = ""
    parallel: bool = False
    workers: str = "3"
    engine: str = ""
    notes: bool = True
    assessment: bool = True
    subject: str = ""
    languages: str = "en"
    tor: str = "auto"
    egress: str = "auto"
    proxies: str = ""  # one a line; never shown again (passwords)
    force: bool = False
    skip_bad: bool = False
    errors: dict[str, str] = field(default_factory=dict)  # field name -> one line
    bad_lines: list[str] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings) -> RunForm:
        return cls(
            output=str(settings.output),
            parallel=settings.parallel,
            workers=str(settings.workers),
            engine=settings.engine or "",
            notes=settings.notes,
            assessment=settings.assessment,
            subject=settings.subject or "",
            languages=",".join(settings.languages),
            tor=settings.tor,
            egress=settings.egress,
        )


@dataclass
class RunRequest:
    settings: Settings
    files: list[Path]
    folder: tempfile.TemporaryDirectory[str]
    videos: int
    collections: int


async def read_run_form(form: FormData, base: Settings) -> tuple[RunForm, RunRequest | None]:
    """The form as posted, and the run it asks for (None when something must be fixed first)."""
    values = RunForm(
        urls=str(form.get("urls", "")),
        output=str(form.get("output", "")).strip() or str(base.output),
        parallel="parallel" in form,
        workers=str(form.get("workers", "3")).strip(),
        engine=str(form.get("engine", "")),
        notes="notes" in form,
        assessment="assessment" in form,
        subject=str(form.get("subject", "")).strip(),
        languages=str(form.get("languages", "")).strip(),
        tor=str(form.get("tor", "auto")),
        egress=str(form.get("egress", "auto")),
        proxies=str(form.get("proxies", "")),
        force="force" in form,
        skip_bad="skip_bad" in form,
    )
    settings = _settings(values, base)
    folder = tempfile.TemporaryDirectory(prefix="study-buddy-ui-")
    files = await _input_files(values, form.get("upload"), Path(folder.name))
    request = None
    if settings is not None and files and not values.errors:
        request = _read_lines(values, settings, files, folder)
    if request is None:
        folder.cleanup()
    return values, request


def _settings(values: RunForm, base: Settings) -> Settings | None:
    errors = values.errors
    workers = int(values.workers) if values.workers.isdigit() else 0
    if not 1 <= workers <= 16:
        errors["workers"] = f"Workers {values.workers!r}: a whole number from 1 to 16."
    if values.engine not in ENGINES:
        errors["engine"] = f"Engine {values.engine!r}: choose anthropic or offline."
    elif values.engine == "anthropic" and values.notes and not base.api_key:
        errors["engine"] = "The anthropic engine needs ANTHROPIC_API_KEY in the server's environment."
    if values.tor not in TOR_MODES:
        errors["tor"] = f"Tor {values.tor!r}: choose auto, system, embedded or off."
    languages = base.languages
    try:
        languages = parse_languages(values.languages)
    except StudyBuddyError as exc:
        errors["languages"] = f"Languages: {exc}"
    proxies = base.proxies
    lines = [line.strip() for line in values.proxies.splitlines() if line.strip()]
    values.proxies = ""  # a proxy's password is not sent back in the page
    try:
        if lines:
            proxies = tuple(_proxy(number, line) for number, line in enumerate(lines, start=1))
        check_egress(values.egress, proxies)
    except StudyBuddyError as exc:
        errors["egress"] = str(exc)
    output = Path(values.output).expanduser()
    try:
        OutputTree(output).ensure_writable()
    except StudyBuddyError as exc:
        errors["output"] = str(exc)
    if errors:
        return None
    return dataclasses.replace(
        base,
        output=output,
        parallel=values.parallel,
        workers=workers,
        engine=values.engine or None,
        notes=values.notes,
        assessment=values.assessment,
        subject=values.subject or None,
        languages=languages,
        tor=values.tor,
        egress=values.egress,
        proxies=proxies,
        force=values.force,
    )


def _proxy(number: int, line: str) -> ProxySpec:
    return parse_proxy(line, option=f"Proxy line {number}:")


async def _input_files(values: RunForm, upload: object, folder: Path) -> list[Path]:
    """The pasted lines and the uploaded file, saved for `read_inputs`; an upload that is too big or not
    text is an error of the `upload` field."""
    files = []
    if values.urls.strip():
        pasted = folder / PASTED
        pasted.write_text(values.urls, encoding="utf-8")
        files.append(pasted)
    if isinstance(upload, UploadFile) and upload.filename:
        name = safe_filename(Path(upload.filename).name) or "upload.txt"
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            values.errors["upload"] = f"{name}: over the 10 MB limit of an upload."
        elif b"\0" in data[:_BINARY_PROBE]:
            values.errors["upload"] = f"{name}: not a text file (one video URL per line expected)."
        else:
            path = folder / name
            path.write_bytes(data)
            files.append(path)
    if not files and "upload" not in values.errors:
        values.errors["urls"] = "Paste video, playlist or channel URLs, or upload a urls.txt."
    return files


def _read_lines(
    values: RunForm, settings: Settings, files: list[Path], folder: tempfile.TemporaryDirectory[str]
) -> RunRequest | None:
    try:
        inputs = read_inputs([], files)
    except StudyBuddyError as exc:
        values.errors["urls"] = str(exc).replace(folder.name + "/", "")
        return None
    values.bad_lines = [bad.message.removeprefix(folder.name + "/") for bad in inputs.bad]
    usable = inputs.video_ids or inputs.collections
    if not usable:
        values.errors["urls"] = "No line names a video, playlist or channel."
        return None
    if values.bad_lines and not values.skip_bad:
        return None
    return RunRequest(settings, files, folder, len(inputs.video_ids), len(inputs.collections))
