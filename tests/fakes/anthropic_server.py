"""A fake Anthropic Messages API on loopback, for the real SDK to talk to.

`POST /v1/messages` answers a forced tool call as the API does: a `tool_use` content block (`id`, `name`,
`input`) with `stop_reason` `tool_use`, its input built like a model's from the material the request holds
(`anthropic_answers`: a note, section notes, an overview or an assessment, every second one the material
has). `GET /v1/models/{id}` answers for known models. Usage counts tokens roughly as a BPE tokenizer does
(`count_tokens`: tools, system and messages), and prompt caching follows the API's prefix order (tools ->
system -> messages): the prefix up to the last block marked `cache_control` is reported as
`cache_creation_input_tokens` the first time and `cache_read_input_tokens` when a later request repeats it;
a different `tool_choice` invalidates a prefix that reaches into the messages.

Knobs on `FakeAnthropic`: `latency`, `refuse_keys` (401), `models` (others get 404), `models_without_tools`
(400 on any request with tools), `max_tokens_above` (cut off answers to transcripts of more lines),
`breaks` (the next answers break a rule, one each: a second past the end, a missing section, a `max_tokens`
stop inside the tool input, prose instead of a tool call, ... see `anthropic_answers.BREAKS`),
`break_share` with `rng` (break that share of answers at random, the way listed in `break_with`),
`fail_next(status, times)` (429/529/5xx with `retry-after`). Every request is recorded (thread-safe) in
`.requests`.

The Message Batches API too: `POST /v1/messages/batches`, `GET /v1/messages/batches/{id}` (in progress
for `batch_delay` seconds after creation, or the next of `next_batch_delays`, then ended with a
`results_url`) and `GET .../results` (JSON Lines, the same each time; `batch_results` makes chosen custom
ids `errored`, `expired` or `canceled`).

Tests get it through the `fake_anthropic` fixture, which also points `ANTHROPIC_BASE_URL` at it; scripts
(the demo, the bench) through `start_fake_anthropic()`.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.fakes.anthropic_answers import (
    answer_input,
    broken,
    count_tokens,
    moments,
    request_text,
    transcript_lines,
    video_end,
)

API_KEY = "sk-ant-test-0123456789abcdef"
MODEL = "claude-test-1"
TOOL_USE_TOKENS = 313  # the system prompt the API adds to a request with a forced tool (Sonnet 4.5's count)
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


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
    models_without_tools: set[str] = field(default_factory=set)
    refuse_keys: bool = False
    latency: float = 0.0
    max_tokens_above: int | None = None  # answer max_tokens when the transcript has more lines than this
    breaks: list[str] = field(default_factory=list)  # the next answers break these rules, one each
    break_share: float = 0.0  # ... and this share of the others, at random (`rng`), one of `break_with`
    break_with: tuple[str, ...] = ("past_end", "missing_section", "unordered", "max_tokens", "prose")
    rng: random.Random = field(default_factory=lambda: random.Random(13))
    requests: list[RecordedRequest] = field(default_factory=list)
    max_in_flight: int = 0  # the most message requests the server was answering at once
    batch_delay: float = 0.0  # seconds a batch stays in progress
    next_batch_delays: list[float] = field(default_factory=list)  # ... the next batches, one each, instead
    batch_results: dict[str, str] = field(default_factory=dict)  # custom id -> errored|expired|canceled
    batches: dict[str, FakeBatch] = field(default_factory=dict)
    _in_flight: int = 0
    _failures: list[tuple[int, str]] = field(default_factory=list)
    _cached_prefixes: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int, times: int = 1, retry_after: str = "0.01") -> None:
        """Answer the next `times` message requests with `status` and a `retry-after` header."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * times)

    def message_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == "/v1/messages"]

    def batch_creations(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path == "/v1/messages/batches"]

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def next_failure(self) -> tuple[int, str] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def next_break(self) -> str | None:
        """How the next answer breaks the rules (None: it keeps them)."""
        with self._lock:
            if self.breaks:
                return self.breaks.pop(0)
            if self.break_share and self.rng.random() < self.break_share:
                return self.rng.choice(self.break_with)
            return None

    def cache_tokens(self, body: dict[str, Any]) -> tuple[int, int]:
        """(cache read, cache write) tokens of a request: its prefix up to the last `cache_control` block."""
        prefix = cached_prefix(body)
        if prefix is None:
            return 0, 0
        key, tokens = prefix
        with self._lock:
            if key in self._cached_prefixes:
                return tokens, 0
            self._cached_prefixes.add(key)
            return 0, tokens

    def answer_slowly(self) -> None:
        """Wait `latency` seconds, counting how many requests wait at the same time."""
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        time.sleep(self.latency)
        with self._lock:
            self._in_flight -= 1


@dataclass
class FakeBatch:
    """One Message Batch: its requests, and when it was created (it ends `batch_delay` s later)."""

    id: str
    requests: list[dict[str, Any]]
    created: float
    answers: list[dict[str, Any]] | None = None  # the results, once asked for (the same every time after)
    delay: float | None = None  # seconds in progress (None: the fake's `batch_delay`)

    def to_json(self, fake: FakeAnthropic) -> dict[str, Any]:
        ended = time.time() >= self.created + (fake.batch_delay if self.delay is None else self.delay)
        total = len(self.requests)
        outcomes = [fake.batch_results.get(r["custom_id"], "succeeded") for r in self.requests]
        counts = {kind: outcomes.count(kind) if ended else 0 for kind in _BATCH_OUTCOMES}
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {"processing": 0 if ended else total, **counts},
            "created_at": stamp,
            "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created + 86400)),
            "ended_at": stamp if ended else None,
            "results_url": f"{fake.url}/v1/messages/batches/{self.id}/results" if ended else None,
        }

    def results(self, fake: FakeAnthropic) -> list[dict[str, Any]]:
        if self.answers is None:
            self.answers = self._answer(fake)
        return self.answers

    def _answer(self, fake: FakeAnthropic) -> list[dict[str, Any]]:
        lines = []
        for request in self.requests:
            custom_id, outcome = request["custom_id"], fake.batch_results.get(request["custom_id"])
            if outcome == "errored":
                result: dict[str, Any] = {"type": "errored", "error": error_body(400, "bad request in batch")}
            elif outcome is not None:
                result = {"type": outcome}
            else:
                result = {"type": "succeeded", "message": fake_message(fake, request["params"])}
            lines.append({"custom_id": custom_id, "result": result})
        return lines


_BATCH_OUTCOMES = ("succeeded", "errored", "expired", "canceled")


def cached_prefix(params: dict[str, Any]) -> tuple[str, int] | None:
    """What the API would cache for a request, and its tokens: tools, system and message blocks (in that
    order) up to the last one marked `cache_control`; a prefix reaching into the messages depends on the
    `tool_choice` too (changing it invalidates cached messages, not tools or system)."""
    system = params.get("system", [])
    blocks = [("tools", tool) for tool in params.get("tools", [])]
    blocks += [("system", block) for block in (system if isinstance(system, list) else [])]
    blocks += [
        ("messages", block)
        for message in params.get("messages", [])
        if isinstance(message["content"], list)
        for block in message["content"]
    ]
    marked = [index for index, (_, block) in enumerate(blocks) if "cache_control" in block]
    if not marked:
        return None
    prefix = blocks[: marked[-1] + 1]
    choice = params.get("tool_choice") if prefix[-1][0] == "messages" else None
    key = json.dumps([params.get("model"), choice, prefix], sort_keys=True)
    tokens = sum(count_tokens(block.get("text") or json.dumps(block)) for _, block in prefix)
    return key, tokens + (TOOL_USE_TOKENS if params.get("tools") else 0)


def sent_tokens(params: dict[str, Any]) -> int:
    """The input tokens of a request: its tools (with the API's tool-use prompt), system and messages."""
    tools = params.get("tools", [])
    overhead = TOOL_USE_TOKENS if tools else 0
    return overhead + count_tokens(json.dumps(tools)) + count_tokens(request_text(params)) + 3


def fake_message(fake: FakeAnthropic, params: dict[str, Any]) -> dict[str, Any]:
    """The answer to one Messages request, with usage counted from what was sent (and what was cached)."""
    material = request_text(params)
    tool = (params.get("tool_choice") or {}).get("name", "")
    found = moments(material)
    how = fake.next_break() if params.get("max_tokens", 0) > 1 else None  # the model check breaks nothing
    if fake.max_tokens_above is not None and len(transcript_lines(material)) > fake.max_tokens_above:
        how = "max_tokens"
    data = broken(tool, answer_input(tool, material), how or "", video_end(material, found))
    stop = "tool_use"
    call = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": tool, "input": data}
    content: list[dict[str, Any]] = [call]
    if params.get("max_tokens", 0) <= 1:  # the model check: cut off before any input
        stop, call["input"] = "max_tokens", {}
    elif how == "max_tokens":  # cut off inside the tool input: only its first part came out
        stop, call["input"] = "max_tokens", dict(list(data.items())[:1])
    elif how == "context_window":  # the transcript filled the model's context: the answer stopped there
        stop, call["input"] = "model_context_window_exceeded", {}
    elif how in ("prose", "refusal"):
        stop = "end_turn" if how == "prose" else "refusal"
        text = "## Summary\nThe video explains many things." if how == "prose" else "I can't help with that."
        content = [{"type": "text", "text": text}]
    cache_read, cache_write = fake.cache_tokens(params)
    output = sum(count_tokens(json.dumps(block.get("input", block.get("text")))) for block in content)
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": params["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": max(sent_tokens(params) - cache_read - cache_write, 1),
            "output_tokens": min(output, params.get("max_tokens", output)),
            "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": cache_write,
        },
    }


def error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": f"req_{uuid.uuid4().hex[:24]}",
    }


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
                response=payload if isinstance(payload, dict) else {"results": payload},
            )
        )
        if isinstance(payload, list):  # batch results: JSON Lines
            data = "".join(json.dumps(line) + "\n" for line in payload).encode()
        else:
            data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header(
            "content-type", "application/x-jsonl" if isinstance(payload, list) else "application/json"
        )
        self.send_header("content-length", str(len(data)))
        self.send_header(
            "request-id", "req_fake" if isinstance(payload, list) else payload.get("request_id", "req_fake")
        )
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
    ) -> tuple[int, dict[str, Any] | list[Any], dict[str, str]]:
        if fake.refuse_keys or self._presented_key() != fake.api_key:
            return 401, error_body(401, "invalid x-api-key"), {}
        if not self.headers.get("anthropic-version"):
            return 400, error_body(400, "anthropic-version: header is required"), {}
        if self.command == "GET" and self.path.startswith("/v1/models/"):
            return self._model_info(fake, self.path.removeprefix("/v1/models/"))
        if self.command == "POST" and self.path == "/v1/messages" and body is not None:
            return self._message(fake, body)
        if self.command == "POST" and self.path == "/v1/messages/batches" and body is not None:
            return self._create_batch(fake, body)
        if self.command == "GET" and self.path.startswith("/v1/messages/batches/"):
            return self._batch(fake, self.path)
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
        if body.get("tools") and body.get("model") in fake.models_without_tools:
            return 400, error_body(400, f"tools: model {body.get('model')} does not support tool use"), {}
        failure = fake.next_failure()
        if failure is not None:
            status, retry_after = failure
            return status, error_body(status, "please slow down"), {"retry-after": retry_after}
        fake.answer_slowly()
        return 200, fake_message(fake, body), {}

    @staticmethod
    def _create_batch(
        fake: FakeAnthropic, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        requests = body.get("requests") or []
        bad_models = {r["params"].get("model") for r in requests} - fake.models
        if bad_models:
            return 404, error_body(404, f"model: {sorted(map(str, bad_models))[0]}"), {}
        with fake._lock:
            delay = fake.next_batch_delays.pop(0) if fake.next_batch_delays else None
        batch = FakeBatch(f"msgbatch_{uuid.uuid4().hex[:24]}", list(requests), time.time(), delay=delay)
        with fake._lock:
            fake.batches[batch.id] = batch
        return 200, batch.to_json(fake), {}

    @staticmethod
    def _batch(fake: FakeAnthropic, path: str) -> tuple[int, dict[str, Any] | list[Any], dict[str, str]]:
        batch_id, _, rest = path.removeprefix("/v1/messages/batches/").partition("/")
        batch = fake.batches.get(batch_id)
        if batch is None:
            return 404, error_body(404, f"batch {batch_id}"), {}
        if rest == "results":
            if batch.to_json(fake)["processing_status"] != "ended":
                return 404, error_body(404, f"batch {batch_id} has not ended"), {}
            return 200, batch.results(fake), {}
        return 200, batch.to_json(fake), {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeAnthropic) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


def start_fake_anthropic() -> tuple[FakeAnthropic, Callable[[], None]]:
    """Serve a fake API on a free loopback port (daemon thread); returns it and the function that stops it."""
    fake = FakeAnthropic()
    server = _Server(fake)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    fake.url = f"http://{host}:{port}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-anthropic", daemon=True
    )
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return fake, stop


@pytest.fixture
def fake_anthropic(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    """A running fake API; `ANTHROPIC_BASE_URL` points at it and no proxy variable can divert the SDK."""
    fake, stop = start_fake_anthropic()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    try:
        yield fake
    finally:
        stop()
