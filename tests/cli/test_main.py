"""The CLI as a user runs it: exit codes, messages, files and archive rows (fake YouTube and Anthropic)."""

from __future__ import annotations

import difflib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
import requests
import responses
from click.testing import CliRunner, Result

from studybuddy.cli.main import cli, main
from studybuddy.store.archive import Archive
from studybuddy.store.archive_rows import Status
from tests.fakes.anthropic_server import API_KEY, MODEL, FakeAnthropic
from tests.fakes.youtube_mock import MockYouTube, video
from tests.notecheck import check_note

README = Path(__file__).parents[2] / "README.md"


@pytest.fixture
def youtube() -> Iterator[MockYouTube]:
    fake = MockYouTube.of(video(n) for n in range(1, 6))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru("http://127.0.0.1")
        fake.install(mock)
        yield fake


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No stray settings in, none out: `main()` loads env files into the real environment."""
    saved = dict(os.environ)
    for name in saved:
        if (name.startswith("STUDY_BUDDY_") and name != "STUDY_BUDDY_TOR") or name in (
            "REQUESTS_CA_BUNDLE",
            "SSL_CERT_FILE",
        ):
            monkeypatch.delenv(name)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    yield
    os.environ.clear()
    os.environ.update(saved)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def archive_rows(output: Path) -> dict[str, Status]:
    with Archive.open(output) as archive:
        return {row.video_id: row.status for row in archive.rows()}


def test_main_job_writes_notes_and_a_rerun_skips_them(
    tmp_path: Path, youtube: MockYouTube, fake_anthropic: FakeAnthropic
) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text(
        "# week 1\nhttps://www.youtube.com/watch?v=vid00000001&t=42s\n\n"
        "https://youtu.be/vid00000002\nvid00000001\n"
    )
    env = {"ANTHROPIC_API_KEY": API_KEY}
    result = invoke("--parallel", "--workers", "2", "--file", str(urls), "--model", MODEL, env=env)
    assert result.exit_code == 0, result.output
    assert "2 done, 0 skipped, 0 failed" in result.output
    assert "1 duplicate(s) in the input taken once" in result.output
    assert (tmp_path / "notes" / "Lecture 1.md").read_text().count("## Summary") == 1
    assert archive_rows(tmp_path / "notes") == {"vid00000001": Status.DONE, "vid00000002": Status.DONE}
    assert API_KEY not in "".join(p.read_text() for p in (tmp_path / "notes").glob("*.md"))

    again = invoke("--file", str(urls), "--model", MODEL, env=env)
    assert again.exit_code == 0
    assert "0 done, 2 skipped" in again.output
    assert youtube.per_video() == {"vid00000001": 3, "vid00000002": 3}


def test_bad_line_is_reported_with_its_number_and_the_rest_runs(tmp_path: Path, youtube: MockYouTube) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("vid00000003\nhttps://vimeo.com/123\n")
    result = invoke("--no-notes", "-f", str(urls))
    assert result.exit_code == 1
    assert f"{urls}:2: not a YouTube video URL: 'https://vimeo.com/123'" in result.output
    assert archive_rows(tmp_path / "notes") == {"vid00000003": Status.DONE}


def test_ctrl_c_finishes_the_video_in_progress_and_exits_130(tmp_path: Path) -> None:
    pressed = threading.Event()

    def ctrl_c(signum: int, frame: object) -> None:
        pressed.set()
        raise KeyboardInterrupt

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        MockYouTube.of(video(n) for n in range(1, 4)).install(mock)
        serve_watch = mock.registered()[0].callback  # type: ignore[attr-defined]

        def watch_page(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
            if "vid00000002" in str(request.url):  # Ctrl-C while the second video is fetched
                os.kill(os.getpid(), signal.SIGINT)
                assert pressed.wait(10)
            return serve_watch(request)  # type: ignore[no-any-return]

        mock.registered()[0].callback = watch_page  # type: ignore[attr-defined]
        previous = signal.signal(signal.SIGINT, ctrl_c)
        try:
            result = invoke("--no-notes", "vid00000001", "vid00000002", "vid00000003")
        finally:
            signal.signal(signal.SIGINT, previous)
    assert result.exit_code == 130, result.output
    assert "Interrupted: finished videos are saved; run the same command again to continue." in result.output
    rows = archive_rows(tmp_path / "notes")
    assert rows["vid00000002"] is Status.DONE  # the video in progress was finished
    notes = {p.name for p in (tmp_path / "notes").glob("*.md") if ".transcript." not in p.name}
    assert notes == {f"Lecture {vid[-1]}.md" for vid, status in rows.items() if status is Status.DONE}


def test_json_summary(youtube: MockYouTube) -> None:
    result = invoke("--no-notes", "--json", "vid00000004", "vid00000005")
    assert result.exit_code == 0
    summary = json.loads(result.output)
    assert (summary["done"], summary["failed"], summary["exit_code"], summary["duplicates"]) == (2, 0, 0, 0)
    assert {o["video_id"] for o in summary["outcomes"]} == {"vid00000004", "vid00000005"}


def test_failed_video_gives_exit_code_1_and_is_listed(tmp_path: Path, youtube: MockYouTube) -> None:
    result = invoke("--no-notes", "--max-retries", "0", "vid00000001", "zzzzzzzzzzz")
    assert result.exit_code == 1
    assert "failed  zzzzzzzzzzz: video is unavailable" in result.output
    listing = invoke("archive", "list", "--status", "failed", "--json")
    rows = [json.loads(line) for line in listing.output.splitlines() if line.startswith("{")]
    assert [(r["video_id"], r["error_kind"]) for r in rows] == [("zzzzzzzzzzz", "permanent")]


def test_a_bug_is_one_line_naming_the_library_the_traceback_comes_with_debug_and_retry_takes_it(
    youtube: MockYouTube, capsys: pytest.CaptureFixture[str]
) -> None:
    youtube.players["vid00000001"] = [{"videoDetails": {}}]  # an answer the library cannot read
    with pytest.raises(SystemExit) as exit_info:
        main(["--no-notes", "vid00000001"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1
    assert "failed  vid00000001: a bug, not a network problem: AttributeError" in out
    assert "youtube-transcript-api " in out and "Traceback" not in out + err
    with pytest.raises(SystemExit):
        main(["--no-notes", "--force", "--debug", "vid00000001"])
    out, err = capsys.readouterr()
    assert "Traceback" in err and "youtube_transcript_api" in err
    listing = invoke("archive", "list", "--kind", "error")
    assert "vid00000001  failed:error" in listing.output
    del youtube.players["vid00000001"]  # the library was fixed
    assert "Nothing to retry" in invoke("archive", "retry", "--kind", "transient").output
    retried = invoke("archive", "retry", "--kind", "error", "--no-notes")
    assert retried.exit_code == 0, retried.output
    assert "1 done" in retried.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--file", "missing.txt"], "missing.txt: no such file"),
        (["--file", "."], ".: is a directory, not a file"),
        (["--file", "empty.txt"], "empty.txt: no video URLs in the file"),
        (["--file", "comments.txt"], "comments.txt: no video URLs in the file"),
        (["--workers", "0", "vid00000001"], "0 is not in the range 1<=x<=16"),
        (["--workers", "99", "vid00000001"], "99 is not in the range 1<=x<=16"),
        (["--proxy", "socks4://127.0.0.1:1080", "vid00000001"], "--proxy 'socks4://127.0.0.1:1080': unknown"),
        (["--output", "afile", "vid00000001"], "afile"),
        (["--ca-bundle", "nope.pem", "vid00000001"], "--ca-bundle 'nope.pem': no such CA bundle file"),
        (["--lang", ";;", "vid00000001"], "--lang ';;'"),
        (["--notes-lang", "de;x", "vid00000001"], "--notes-lang 'de;x': expected one language code"),
        ([], "no video URLs or ids given"),
    ],
)
def test_bad_input_gets_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "comments.txt").write_text("# only\n\n# comments\n")
    (tmp_path / "afile").write_text("not a folder")
    result = invoke("--no-notes", *args)
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) <= 3


def test_invalid_utf8_and_huge_lines_are_bad_lines_not_crashes(tmp_path: Path, youtube: MockYouTube) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_bytes(b"vid00000001\n\xff\xfe bad\n" + b"x" * 10_000_000 + b"\n")
    result = invoke("--no-notes", "-f", str(urls))
    assert result.exit_code == 1
    assert f"{urls}:2: not valid UTF-8" in result.output
    assert f"{urls}:3:" in result.output
    assert archive_rows(tmp_path / "notes") == {"vid00000001": Status.DONE}


def test_missing_api_key_with_engine_anthropic_stops_before_any_work(
    tmp_path: Path, youtube: MockYouTube
) -> None:
    result = invoke("--engine", "anthropic", "vid00000001")
    assert result.exit_code == 1
    assert "ANTHROPIC_API_KEY is not set" in result.output and "--engine offline" in result.output
    assert youtube.calls == []
    assert not (tmp_path / "notes" / Archive.FILENAME).exists()


def test_without_api_key_the_offline_engine_writes_the_notes(tmp_path: Path, youtube: MockYouTube) -> None:
    result = invoke("vid00000001")
    assert result.exit_code == 0, result.output
    assert check_note(tmp_path / "notes" / "Lecture 1.md")["model"] == "offline-extractive-v1"
    note = (tmp_path / "notes" / "Lecture 1.md").read_text()
    assert "## Summary" in note and "## Outline" in note


def test_refused_api_key_is_one_line_without_the_key(
    youtube: MockYouTube, fake_anthropic: FakeAnthropic
) -> None:
    result = invoke("vid00000001", "--model", MODEL, env={"ANTHROPIC_API_KEY": "sk-ant-refused-0000000"})
    assert result.exit_code == 1
    assert "refused the API key" in result.output
    assert "sk-ant-refused" not in result.output
    assert youtube.calls == []


def test_a_model_that_cannot_use_tools_stops_the_run_before_any_youtube_request(
    tmp_path: Path, youtube: MockYouTube, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.models.add("claude-old-1")
    fake_anthropic.models_without_tools.add("claude-old-1")
    result = invoke("--model", "claude-old-1", "vid00000001", env={"ANTHROPIC_API_KEY": API_KEY})
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        "Error: model 'claude-old-1' cannot write structured notes: Anthropic refused a tool call (400): "
        "tools: model claude-old-1 does not support tool use"
    ]
    assert youtube.calls == []
    [check] = fake_anthropic.message_requests()
    assert check.body is not None and check.body["max_tokens"] == 1


def test_a_note_that_fails_its_checks_twice_is_not_written_and_archive_retry_redoes_it(
    tmp_path: Path, youtube: MockYouTube, fake_anthropic: FakeAnthropic
) -> None:
    env = {"ANTHROPIC_API_KEY": API_KEY}
    fake_anthropic.breaks = ["missing_section", "missing_section"]  # the note call and its repair
    result = invoke("--model", MODEL, "vid00000001", env=env)
    assert result.exit_code == 1
    assert "the note failed the checks again after a repair: the answer has no `outline`" in result.output
    assert not (tmp_path / "notes" / "Lecture 1.md").exists()
    with Archive.open(tmp_path / "notes") as archive:
        row = archive.get("vid00000001")
    assert row is not None and row.status is Status.FAILED and row.error_kind == "notes"
    tools = [r.body["tool_choice"]["name"] for r in fake_anthropic.message_requests() if r.body]
    assert tools == ["ready", "write_note", "write_note"]  # no assessment for a note that failed

    retried = invoke("archive", "retry", "--kind", "notes", "--model", MODEL, env=env)
    assert retried.exit_code == 0, retried.output
    assert "## Outline" in (tmp_path / "notes" / "Lecture 1.md").read_text()
    assert archive_rows(tmp_path / "notes") == {"vid00000001": Status.DONE}


def test_notes_in_another_language_than_the_transcript(
    tmp_path: Path, youtube: MockYouTube, fake_anthropic: FakeAnthropic
) -> None:
    env = {"ANTHROPIC_API_KEY": API_KEY, "STUDY_BUDDY_NOTES_LANG": "de"}
    result = invoke("--model", MODEL, "--no-assessment", "vid00000001", env=env)
    assert result.exit_code == 0, result.output
    meta = check_note(tmp_path / "notes" / "Lecture 1.md")
    assert (meta["language"], meta["source_language"]) == ("de", "en")
    note_call = fake_anthropic.message_requests()[-1]
    assert note_call.body is not None and "notes_language: de" in note_call.body["system"][1]["text"]


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--debug", "--file", "missing.txt"])
    assert result.exception is not None
    assert "missing.txt: no such file" in str(result.exception)


def test_env_file_and_environment_layering(
    tmp_path: Path, youtube: MockYouTube, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "settings.env").write_text("STUDY_BUDDY_OUTPUT=from-file\nSTUDY_BUDDY_NOTES=false\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--env-file", "settings.env", "vid00000001"])
    assert exit_info.value.code == 0
    assert archive_rows(tmp_path / "from-file") == {"vid00000001": Status.DONE}
    monkeypatch.setenv("STUDY_BUDDY_OUTPUT", "from-env")
    with pytest.raises(SystemExit):
        main(["--env-file", "settings.env", "vid00000002"])
    assert archive_rows(tmp_path / "from-env") == {"vid00000002": Status.DONE}


def test_a_dot_env_in_the_current_folder_cannot_send_the_key_elsewhere(
    tmp_path: Path, youtube: MockYouTube, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    (tmp_path / ".env").write_text(
        "ANTHROPIC_BASE_URL=http://127.0.0.1:9/steal\nSTUDY_BUDDY_NOTES=false\nSSL_CERT_FILE=/dev/null\n"
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["vid00000001"])
    _out, err = capsys.readouterr()
    assert exit_info.value.code == 0, err
    assert "ANTHROPIC_BASE_URL" not in os.environ and "SSL_CERT_FILE" not in os.environ
    assert f"Warning: {tmp_path / '.env'}: ignored ANTHROPIC_BASE_URL, SSL_CERT_FILE" in err
    assert "steal" not in err
    assert archive_rows(tmp_path / "notes") == {"vid00000001": Status.DONE}  # STUDY_BUDDY_NOTES was loaded


@pytest.mark.parametrize(
    ("variable", "effect"),
    [
        ("DEBUG_PARALLEL=true\nDEBUG_MAX_WORKERS=2", lambda out, err, root: "2 videos, 2 workers" in out),
        ("DEBUG_PARALLEL=false\nDEBUG_MAX_WORKERS=2", lambda out, err, root: "2 videos, 1 worker\n" in out),
        ("DEBUG_LOG_LEVEL=warning", lambda out, err, root: "DEBUG" not in err),
        ("DEBUG_KEEP_TEMP=true", lambda out, err, root: (root / ".debug/vid00000001/watch.html").is_file()),
        ("DEBUG_KEEP_TEMP=false", lambda out, err, root: not (root / ".debug").exists()),
    ],
)
def test_each_debug_variable_changes_behaviour(
    tmp_path: Path,
    youtube: MockYouTube,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    effect: Callable[[str, str, Path], bool],
) -> None:
    (tmp_path / ".env.debug").write_text(
        f"DEBUG_URLS=vid00000001 vid00000002\nSTUDY_BUDDY_NOTES=false\n{variable}\n"
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["--debug"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0, out + err
    assert effect(out, err, tmp_path / "notes"), out + err


def test_debug_urls_and_url_file_and_log_level(
    tmp_path: Path, youtube: MockYouTube, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "list.txt").write_text("vid00000003\n")
    (tmp_path / ".env.debug").write_text(
        "DEBUG_URL_FILE=list.txt\nDEBUG_URLS=vid00000004\nDEBUG_LOG_LEVEL=info\nSTUDY_BUDDY_NOTES=false\n"
    )
    with pytest.raises(SystemExit):
        main(["--debug"])
    _out, err = capsys.readouterr()
    assert archive_rows(tmp_path / "notes") == {"vid00000003": Status.DONE, "vid00000004": Status.DONE}
    assert " INFO " in err and " DEBUG " not in err


def test_the_committed_env_debug_loads_and_documents_every_variable() -> None:
    text = (README.parent / ".env.debug").read_text()
    from studybuddy.config import DEBUG_ALIASES, parse_env_file

    assert set(parse_env_file(README.parent / ".env.debug")) == set(DEBUG_ALIASES)
    for name in DEBUG_ALIASES:
        assert "\n# " in text.split(name)[0][-300:], f"{name} has no comment above it"


def test_every_command_has_help_and_the_readme_shows_the_help() -> None:
    def walk(command: click.Command, path: list[str]) -> Iterator[tuple[list[str], click.Command]]:
        yield path, command
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])

    for path, command in walk(cli, []):
        assert command.help, f"{' '.join(path)} has no help"
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.help, f"{' '.join(path)} {param.opts} has no help"
    help_text = CliRunner().invoke(cli, ["--help"], prog_name="study-buddy", terminal_width=80).output
    block = re.search(r"<!-- help -->\n```text\n(.*?)```", README.read_text(), re.DOTALL)
    assert block is not None
    assert block.group(1) == help_text, "".join(
        difflib.unified_diff(block.group(1).splitlines(True), help_text.splitlines(True))
    )


def test_python_dash_m_and_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and "study-buddy" in result.output
    module = subprocess.run(
        [sys.executable, "-m", "studybuddy", "--version"], capture_output=True, text=True, check=False
    )
    assert module.returncode == 0 and module.stdout.startswith("study-buddy, version")
