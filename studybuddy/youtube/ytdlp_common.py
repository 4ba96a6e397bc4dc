"""What every use of yt-dlp shares: trusting the run's CA bundle, a logger that keeps secrets out, and
reading yt-dlp's errors.

yt-dlp has no option for a CA bundle, and turning verification off would be unsafe. Its request handlers
build their TLS context in `_make_sslcontext` (with certifi's roots); `trust_ca_bundle` wraps that method
so the context also trusts the bundle's CAs. Verification and host name checks stay on.

yt-dlp is imported only inside functions: importing it costs a third of a second.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from studybuddy.logs import SecretFilter

log = logging.getLogger(__name__)

BLOCK_SIGNS = ("sign in to confirm", "not a bot", "captcha", "http error 429", "too many requests")
_KEPT_WARNINGS = 50


def trust_ca_bundle(ydl: Any, ca_bundle: str) -> None:
    """Make every yt-dlp request handler's TLS context also trust `ca_bundle` (verification stays on)."""
    for handler in ydl._request_director.handlers.values():
        handler._make_sslcontext = functools.partial(_context_trusting, handler._make_sslcontext, ca_bundle)


def _context_trusting(
    make_context: Callable[..., ssl.SSLContext], ca_bundle: str, *args: Any, **kwargs: Any
) -> ssl.SSLContext:
    context = make_context(*args, **kwargs)
    if context.verify_mode != ssl.CERT_NONE:
        context.load_verify_locations(cafile=ca_bundle)
    return context


class YtDlpLogger:
    """Sends yt-dlp's output to our debug log without secrets (proxy passwords, any `user:pass@`), and
    keeps the warnings and errors of the current extraction for whoever must explain a failure."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._filter = SecretFilter(secret for secret in secrets if secret)
        self.warnings: deque[str] = deque(maxlen=_KEPT_WARNINGS)

    def redact(self, message: str) -> str:
        return self._filter.redact(message)

    def debug(self, message: str) -> None:
        log.debug("yt-dlp: %s", self.redact(message))

    def warning(self, message: str) -> None:
        text = self.redact(message)
        self.warnings.append(text)
        log.debug("yt-dlp: %s", text)

    error = warning

    def info(self, message: str) -> None:
        self.debug(message)


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception behind yt-dlp's wrappers (`DownloadError.exc_info`, `ExtractorError.cause`)."""
    current: BaseException = error
    for _ in range(5):  # wrappers nest a few levels at most
        exc_info = getattr(current, "exc_info", None)
        inner = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None
        inner = getattr(current, "cause", None) or inner
        if not isinstance(inner, BaseException) or inner is current:
            break
        if getattr(inner, "status", None) is None and getattr(current, "expected", False):
            break  # an expected ExtractorError ("YouTube said: ...") is the message to show
        current = inner
    return current


def error_status(cause: BaseException) -> int | None:
    """The HTTP status of a yt-dlp `HTTPError` (or anything with a `status` or `response.status`)."""
    status = getattr(getattr(cause, "response", None), "status", None) or getattr(cause, "status", None)
    return status if isinstance(status, int) else None


def error_message(cause: BaseException) -> str:
    """yt-dlp's own one-line message of an error, without its `ERROR: ` prefix."""
    message = str(getattr(cause, "orig_msg", None) or getattr(cause, "msg", None) or cause).strip()
    return message.removeprefix("ERROR: ").splitlines()[0] if message else type(cause).__name__


def is_network_error(error: BaseException) -> bool:
    import yt_dlp.networking.exceptions as network

    return isinstance(error, OSError | network.TransportError | network.RequestError)
