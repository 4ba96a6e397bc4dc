"""Tests for studybuddy.ui.guard: the token, Host and Origin checks in front of every page."""

from __future__ import annotations

from pathlib import Path

from studybuddy.ui.guard import COOKIE, allowed_hosts
from tests.ui_support import BASE, TOKEN, ScriptedRunner, settings_for, ui_client


def one_line(text: str) -> bool:
    return text.endswith("\n") and "\n" not in text[:-1]


def test_without_the_token_every_page_is_a_403_with_one_line(tmp_path: Path) -> None:
    with ui_client(settings_for(tmp_path), ScriptedRunner(), login=False) as client:
        for path in ("/", "/archive", "/notes", "/runs/abc", "/static/style.css", f"/?token={TOKEN}x"):
            answer = client.get(path, follow_redirects=False)
            assert answer.status_code == 403, path
            assert one_line(answer.text) and "token" in answer.text


def test_the_token_in_the_url_becomes_a_cookie_and_leaves_the_address(tmp_path: Path) -> None:
    with ui_client(settings_for(tmp_path), ScriptedRunner(), login=False) as client:
        first = client.get(f"/archive?token={TOKEN}&status=done", follow_redirects=False)
        assert first.status_code == 303
        assert first.headers["location"] == "/archive?status=done"
        cookie = first.headers["set-cookie"]
        assert f"{COOKIE}={TOKEN}" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert client.get("/notes").status_code == 200  # the cookie is enough from now on


def test_a_foreign_host_is_refused_even_with_the_token(tmp_path: Path) -> None:
    """DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own name as Host."""
    with ui_client(settings_for(tmp_path), ScriptedRunner()) as client:
        answer = client.get("/", headers={"Host": f"evil.example:{8765}"})
        assert answer.status_code == 403
        assert one_line(answer.text) and "evil.example" in answer.text
        same = {"Host": "localhost:8765", "Origin": "http://localhost:8765"}
        assert client.get("/", headers=same).status_code == 200


def test_another_origin_cannot_post_or_read(tmp_path: Path) -> None:
    runner = ScriptedRunner()
    with ui_client(settings_for(tmp_path), runner) as client:
        form = {"urls": "dQw4w9WgXcQ", "workers": "1", "languages": "en", "tor": "off", "notes": "on"}
        foreign = client.post("/runs", data=form, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403 and one_line(foreign.text) and "evil.example" in foreign.text
        referer = client.post(
            "/runs", data=form, headers={"Origin": "", "Referer": "http://evil.example/page"}
        )
        assert referer.status_code == 403
        assert client.get("/notes", headers={"Origin": "http://evil.example"}).status_code == 403
        assert runner.calls == []  # nothing was started
        same_site = client.post("/runs", data=form, headers={"Origin": BASE}, follow_redirects=False)
        assert same_site.status_code == 303
        runner.release.set()


def test_a_post_that_says_nowhere_it_comes_from_is_refused(tmp_path: Path) -> None:
    with ui_client(settings_for(tmp_path), ScriptedRunner()) as client:
        del client.headers["Origin"]
        answer = client.post("/watch", data={"url": "dQw4w9WgXcQ"})
        assert answer.status_code == 403 and "Origin" in answer.text


def test_allowed_hosts_name_the_port_and_the_loopback_names() -> None:
    assert allowed_hosts("127.0.0.1", 80) == {"127.0.0.1:80", "localhost:80", "[::1]:80"}
    assert allowed_hosts("192.0.2.7", 8000) == {"192.0.2.7:8000"}
    assert allowed_hosts("2001:db8::1", 8000) == {"[2001:db8::1]:8000"}
    assert allowed_hosts("0.0.0.0", 8000) is None  # any name of the machine; token and Origin still checked


def test_an_origin_must_be_the_host_the_request_names(tmp_path: Path) -> None:
    """localhost and 127.0.0.1 are both this server, but a page of one is another origin to the other."""
    with ui_client(settings_for(tmp_path), ScriptedRunner()) as client:
        answer = client.get("/notes", headers={"Host": "localhost:8765", "Origin": BASE})
        assert answer.status_code == 403 and BASE in answer.text
        assert (
            client.get(
                "/notes", headers={"Host": "localhost:8765", "Origin": "http://localhost:8765"}
            ).status_code
            == 200
        )
