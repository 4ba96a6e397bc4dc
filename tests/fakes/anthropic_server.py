"""A fake Anthropic Messages API on loopback, for the real SDK to talk to.

`POST /v1/messages` answers with a note built from the request's transcript (the four sections and a
timestamp link to a second that is in the transcript); `GET /v1/models/{id}` answers for known models.
Knobs on `FakeAnthropic`: `latency`, `refuse_keys` (401), `models` (others get 404), `stop_reason`,
`fail_next(status, times)` (429/529/5xx with `retry-after`), the cache token counts. Every request is
recorded (thread-safe) in `.requests`.

Tests get it through the `fake_anthropic` fixture, which also points `ANTHROPIC_BASE_URL` at it.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

API_KEY = "sk-ant-test-0123456789abcdef"
MODEL = "claude-test-1"
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_CAPTION_LINE = re.compile(r"^\[(\d+)s\] (.+)$", re.MULTILINE)
_TRANSCRIPT = re.compile(r"<transcript[^>]*>\n(.*?)\n</transcript>", re.DOTALL)
_VIDEO_ID = re.compile(r"^video_id: (\S+)$", re.MULTILINE)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any] | None
    status: int
    response: dict[str, Any]


@dataclass
class FakeAnthropic:
    """The server's state and knobs. Tests change the knobs directly; the handler reads them."""

    url: str = ""
    api_key: str = API_KEY
    models: set[str] = field(default_factory=lambda: {MODEL})
    refuse_keys: bool = False
    latency: float = 0.0
    stop_reason: str = "end_turn"
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)
    max_in_flight: int = 0  # the most message requests the server was answering at once
    _in_flight: int = 0
    _failures: list[tuple[int, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int, times: int = 1, retry_after: str = "0.01") -> None:
        """Answer the next `times` message requests with `status` and a `retry-after` header."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * times)

    def message_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == "/v1/messages"]

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def next_failure(self) -> tuple[int, str] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def answer_slowly(self) -> None:
        """Wait `latency` seconds, counting how many requests wait at the same time."""
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        time.sleep(self.latency)
        with self._lock:
            self._in_flight -= 1


def error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": f"req_{uuid.uuid4().hex[:24]}",
    }


def fake_note(user_text: str) -> str:
    """A plausible note: the four sections, and a link to a second the transcript really has."""
    transcript = _TRANSCRIPT.search(user_text)
    captions = _CAPTION_LINE.findall(transcript.group(1)) if transcript else []
    video = _VIDEO_ID.search(user_text)
    video_id = video.group(1) if video else "unknown"
    second, text = captions[len(captions) // 2] if captions else ("0", "nothing was said")
    minutes, secs = divmod(int(second), 60)
    first_word = text.split()[0]
    return (
        f"## Summary\nThe video explains {text.lower()}\n\n"
        f"## Key concepts\n- **{first_word}**: what the speaker introduces first.\n\n"
        f"## Detailed notes\n### Main idea\n- [{minutes:02d}:{secs:02d}](https://youtu.be/{video_id}?t={second})"
        f" {text}\n\n"
        f"## Review questions\n1. What does the speaker say about {first_word}? ({text})\n"
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def do_GET(self) -> None:
        self._serve(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self._serve(json.loads(self.rfile.read(length) or b"{}"))

    def _serve(self, body: dict[str, Any] | None) -> None:
        fake = self.server.fake
        status, payload, headers = self._answer(fake, body)
        fake.record(
            RecordedRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                status=status,
                response=payload,
            )
        )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", payload.get("request_id", "req_fake"))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _presented_key(self) -> str | None:
        if key := self.headers.get("x-api-key"):
            return key
        authorization = self.headers.get("authorization") or ""
        return authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None

    def _answer(
        self, fake: FakeAnthropic, body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if fake.refuse_keys or self._presented_key() != fake.api_key:
            return 401, error_body(401, "invalid x-api-key"), {}
        if not self.headers.get("anthropic-version"):
            return 400, error_body(400, "anthropic-version: header is required"), {}
        if self.command == "GET" and self.path.startswith("/v1/models/"):
            return self._model_info(fake, self.path.removeprefix("/v1/models/"))
        if self.command == "POST" and self.path == "/v1/messages" and body is not None:
            return self._message(fake, body)
        return 404, error_body(404, f"Not found: {self.command} {self.path}"), {}

    @staticmethod
    def _model_info(fake: FakeAnthropic, model: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        if model not in fake.models:
            return 404, error_body(404, f"model: {model}"), {}
        info = {
            "type": "model",
            "id": model,
            "display_name": model,
            "created_at": "2026-01-01T00:00:00Z",
            "lifecycle": "active",
        }
        return 200, info, {}

    @staticmethod
    def _message(fake: FakeAnthropic, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        if body.get("model") not in fake.models:
            return 404, error_body(404, f"model: {body.get('model')}"), {}
        failure = fake.next_failure()
        if failure is not None:
            status, retry_after = failure
            return status, error_body(status, "please slow down"), {"retry-after": retry_after}
        fake.answer_slowly()
        user_text = "".join(
            m["content"]
            if isinstance(m["content"], str)
            else "".join(b.get("text", "") for b in m["content"])
            for m in body.get("messages", [])
        )
        note = fake_note(user_text)
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": note}],
            "stop_reason": fake.stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": (len(str(body.get("system", ""))) + len(user_text)) // 4 + 1,
                "output_tokens": len(note) // 4 + 1,
                "cache_read_input_tokens": fake.cache_read_tokens,
                "cache_creation_input_tokens": fake.cache_write_tokens,
            },
        }
        return 200, message, {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeAnthropic) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


@pytest.fixture
def fake_anthropic(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    """A running fake API; `ANTHROPIC_BASE_URL` points at it and no proxy variable can divert the SDK."""
    fake = FakeAnthropic()
    server = _Server(fake)
    host, port = server.server_address[:2]
    fake.url = f"http://{host}:{port}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-anthropic", daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
