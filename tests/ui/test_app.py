"""Tests for studybuddy.ui.app through the ASGI test client: every page, every form error, live runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from studybuddy.ui.forms import MAX_UPLOAD_BYTES
from tests.ui_support import ScriptedRunner, settings_for, ui_client

IDS = ["dQw4w9WgXcQ", "9bZkp7q19f0", "kJQP7kiw5Fk"]


def form(**changes: str) -> dict[str, str]:
    values = {"urls": "\n".join(IDS), "workers": "2", "languages": "en", "tor": "off", "notes": "on"}
    return values | changes


def start(client: TestClient, **changes: str) -> str:
    answer = client.post("/runs", data=form(**changes), follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return str(answer.headers["location"])


def errors_of(html: str) -> list[str]:
    block = re.search(r'<div class="errors".*?</div>', html, re.DOTALL)
    assert block is not None, "no error block on the page"
    return [
        re.sub(r"<[^>]+>", "", item).replace("&#39;", "'") for item in re.findall(r"<li.*?</li>", block[0])
    ]


def test_every_page_renders_without_a_run(tmp_path: Path) -> None:
    with ui_client(settings_for(tmp_path), ScriptedRunner()) as client:
        pages = {
            "/": "Start the run",
            "/archive": "no archive here yet",
            "/notes": "No notes in",
            "/watch": "Nothing is watched",
            "/tor": "Tor is off for this server",
            "/usage": "no archive here yet",
        }
        for path, text in pages.items():
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert text in answer.text, path
        assert client.get("/static/live.js").status_code == 200
        assert client.get("/runs/nosuchrun").status_code == 404
        assert client.get("/notes/missing.md").status_code == 404
        assert client.get("/notes/../../etc/passwd.md").status_code == 404


def test_every_control_of_the_forms_has_a_label(tmp_path: Path) -> None:
    with ui_client(settings_for(tmp_path), ScriptedRunner()) as client:
        for path in ("/", "/archive", "/watch"):
            html = client.get(path).text
            labelled = set(re.findall(r'<label for="([^"]+)"', html))
            for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html):
                if 'type="hidden"' in tag:
                    continue
                if 'type="checkbox"' in tag:  # wrapped in its label
                    assert re.search(r"<label><" + re.escape(tag[1:]), html), tag
                    continue
                control_id = re.search(r'id="([^"]+)"', tag)
                assert control_id and control_id[1] in labelled, (path, tag)


def test_bad_lines_come_back_with_their_line_numbers_and_nothing_starts(tmp_path: Path) -> None:
    runner = ScriptedRunner()
    with ui_client(settings_for(tmp_path), runner) as client:
        answer = client.post(
            "/runs", data=form(urls="dQw4w9WgXcQ\n# a comment\nnot a video\n\nhttp://x.org/a")
        )
        assert answer.status_code == 400
        assert errors_of(answer.text) == [
            "pasted:3: not a YouTube video URL: 'not a video'",
            "pasted:5: not a YouTube video URL: 'http://x.org/a'",
        ]
        assert runner.calls == []
        runner.release.set()
        location = start(client, urls="dQw4w9WgXcQ\nnot a video", skip_bad="on")
        assert location.startswith("/runs/")
        assert runner.started.wait(10)
        assert runner.calls[0][1] == ["dQw4w9WgXcQ"]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"urls": ""}, "urls", "Paste video, playlist or channel URLs"),
        ({"urls": "# only a comment"}, "urls", "no video URLs in the file"),
        ({"workers": "0"}, "workers", "a whole number from 1 to 16"),
        ({"workers": "many"}, "workers", "a whole number from 1 to 16"),
        ({"languages": "en,,d e"}, "languages", "expected language codes"),
        ({"engine": "anthropic"}, "engine", "needs ANTHROPIC_API_KEY"),
        ({"engine": "gpt"}, "engine", "choose anthropic or offline"),
        ({"tor": "maybe"}, "tor", "choose auto, system, embedded or off"),
        ({"proxies": "socks5h://127.0.0.1:1080\nftp://u:secret@127.0.0.1:21"}, "egress", "Proxy line 2:"),
        ({"egress": "proxies"}, "egress", "no proxy given"),
        ({"egress": "everywhere"}, "egress", "expected one of auto, tor"),
    ],
)
def test_each_bad_field_is_named_on_the_form(
    tmp_path: Path, changes: dict[str, str], field: str, message: str
) -> None:
    with ui_client(settings_for(tmp_path), ScriptedRunner()) as client:
        answer = client.post("/runs", data=form(**changes))
        assert answer.status_code == 400
        assert f'data-field="{field}"' in answer.text
        assert any(message in line for line in errors_of(answer.text)), errors_of(answer.text)
        assert "Traceback" not in answer.text
        assert "secret" not in answer.text  # a proxy's password is never sent back


def test_an_output_folder_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with ui_client(settings_for(tmp_path), ScriptedRunner()) as client:
        answer = client.post("/runs", data=form(output=str(blocker / "notes")))
        assert answer.status_code == 400
        assert errors_of(answer.text) == [
            f"{blocker / 'notes'}: output folder is not writable (Not a directory)"
        ]


def test_an_upload_must_be_text_and_at_most_10_mb(tmp_path: Path) -> None:
    runner = ScriptedRunner()
    with ui_client(settings_for(tmp_path), runner) as client:
        binary = client.post(
            "/runs", data=form(urls=""), files={"upload": ("urls.txt", b"\x89PNG\r\n\0\0", "image/png")}
        )
        assert binary.status_code == 400
        assert errors_of(binary.text) == ["urls.txt: not a text file (one video URL per line expected)."]
        big = b"dQw4w9WgXcQ\n" * (MAX_UPLOAD_BYTES // 12 + 1)
        too_big = client.post("/runs", data=form(urls=""), files={"upload": ("big.txt", big, "text/plain")})
        assert too_big.status_code == 400
        assert errors_of(too_big.text) == ["big.txt: over the 10 MB limit of an upload."]
        bad_line = client.post(
            "/runs", data=form(urls=""), files={"upload": ("urls.txt", b"dQw4w9WgXcQ\nnope\n", "text/plain")}
        )
        assert errors_of(bad_line.text) == ["urls.txt:2: not a YouTube video URL: 'nope'"]
        runner.release.set()
        uploaded = client.post(
            "/runs",
            data=form(urls=""),
            files={"upload": ("urls.txt", b"9bZkp7q19f0\n", "text/plain")},
            follow_redirects=False,
        )
        assert uploaded.status_code == 303
        assert runner.started.wait(10)
        assert runner.calls[0][1] == ["9bZkp7q19f0"]


def test_a_second_run_on_a_busy_folder_is_refused_and_points_to_the_first(tmp_path: Path) -> None:
    runner = ScriptedRunner()
    with ui_client(settings_for(tmp_path), runner) as client:
        first = start(client)
        assert runner.started.wait(10)
        again = client.post("/runs", data=form())
        assert again.status_code == 409
        assert "is busy: run" in errors_of(again.text)[0]
        assert f'href="{first}"' in again.text
        archive = client.get("/archive")
        assert "This folder is busy" in archive.text
        runner.release.set()
        assert client.get(first).status_code == 200
        assert len(runner.calls) == 1


def test_the_run_page_shows_rows_workers_and_progress_and_the_feed_ends_with_the_run(tmp_path: Path) -> None:
    runner = ScriptedRunner(fail=[IDS[1]])
    with ui_client(settings_for(tmp_path), runner) as client:
        location = start(client, parallel="on")
        assert runner.started.wait(10)
        page = client.get(location).text
        assert 'data-state="running"' in page
        assert page.count('data-stage="fetching"') == 3
        assert "exit1 127.0.0.11" in page  # the worker row with its exit
        assert 'max="3" value="0"' in page  # the progress bar
        assert "scripted run in flight" in page
        assert runner.calls[0][0].parallel and runner.calls[0][0].workers == 2
        runner.release.set()
        payloads = []
        with client.stream("GET", location + "/events") as feed:
            assert feed.headers["content-type"].startswith("text/event-stream")
            event = None
            for line in feed.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "live":
                    payloads.append(json.loads(line.removeprefix("data: "))["html"])
                elif event == "end":
                    break
        last = payloads[-1]
        assert 'data-state="finished"' in last
        assert last.count('data-stage="done"') == 2 and 'data-stage="failed"' in last
        assert "transcripts are disabled" in last  # the failure reason in the status table
        assert "3 videos in" in last  # the closing report, as the CLI prints it
        assert "<svg" in last and "<polyline" in last  # the chart of finished videos


def test_a_run_that_crashes_is_shown_and_the_server_goes_on(tmp_path: Path) -> None:
    def crashing(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the disk caught fire")

    with ui_client(settings_for(tmp_path), crashing) as client:  # type: ignore[arg-type]
        location = start(client)
        page = client.get(location).text
        for _ in range(100):
            if "crashed" in page:
                break
            with client.stream("GET", location + "/events") as feed:
                page = "".join(feed.iter_lines())
        assert "The run crashed: RuntimeError: the disk caught fire" in page
        assert client.get("/").status_code == 200
        second = start(client)  # the folder is free again
        assert second != location


def test_stop_asks_the_run_to_finish_and_start_no_more(tmp_path: Path) -> None:
    runner = ScriptedRunner()
    with ui_client(settings_for(tmp_path), runner) as client:
        location = start(client)
        assert runner.started.wait(10)
        assert 'data-state="stopping"' in client.post(location + "/stop").text
        runner.release.set()


def test_watch_adds_and_removes_urls_and_names_a_bad_one(tmp_path: Path) -> None:
    checks = ScriptedRunner()
    checks.release.set()
    with ui_client(settings_for(tmp_path), ScriptedRunner(), watch_runner=checks) as client:
        bad = client.post("/watch", data={"url": "https://example.org/nothing"})
        assert bad.status_code == 400
        assert "URL: not a YouTube video URL: 'https://example.org/nothing'" in bad.text.replace("&#39;", "'")
        playlist = "https://www.youtube.com/playlist?list=PLstudybuddyCourse0000000000000001"
        page = client.post("/watch", data={"url": playlist}).text
        assert f"<code>{playlist}</code>" in page.replace("&amp;", "&")
        assert (tmp_path / "notes" / ".study-buddy-watch.txt").read_text() == playlist + "\n"
        assert checks.started.wait(10)  # the first check runs at once, through the server's runner
        assert checks.calls[0][2] is not None and checks.calls[0][2].due_only
        page = client.get("/watch").text
        assert re.search(r"1 run, 0 skipped .*Next check in (9|10):\d\d", page, re.DOTALL), page
        page = client.post("/watch", data={"remove": playlist}).text
        assert "Nothing is watched" in page
