"""yt-dlp helpers shared by playlists and the subtitle path: CA trust, the secret-free logger, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trustme

from studybuddy.youtube.ytdlp_common import (
    YtDlpLogger,
    _context_trusting,
    error_message,
    error_status,
    root_cause,
)


def test_the_ca_bundle_is_trusted_in_addition_and_verification_stays_on(tmp_path: Path) -> None:
    from yt_dlp.networking._helper import make_ssl_context

    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))

    context = _context_trusting(make_ssl_context, str(bundle))

    subjects = [dict(item[0] for item in cert["subject"]) for cert in context.get_ca_certs()]
    assert any("trustme" in subject.get("organizationName", "") for subject in subjects)
    assert context.check_hostname and context.verify_mode.name == "CERT_REQUIRED"


def test_logger_keeps_warnings_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    logger = YtDlpLogger(["s3cret-pass", None])
    caplog.set_level(logging.DEBUG, logger="studybuddy")
    logger.debug("Proxy map: {'all': 'socks5h://alice:s3cret-pass@127.0.0.1:1080'}")
    logger.warning("via http://bob:hunter2@proxy.example:3128 failed")
    logger.error("s3cret-pass in an error")
    assert list(logger.warnings) == ["via http://***@proxy.example:3128 failed", "*** in an error"]
    assert "s3cret-pass" not in caplog.text and "hunter2" not in caplog.text
    assert "socks5h://***@127.0.0.1:1080" in caplog.text


def test_errors_are_read_through_yt_dlps_wrappers() -> None:
    import io
    import sys

    from yt_dlp.networking.common import Response
    from yt_dlp.networking.exceptions import HTTPError
    from yt_dlp.utils import DownloadError, ExtractorError

    response = Response(io.BytesIO(b""), "https://www.youtube.com/watch?v=x", {}, status=429)
    http_error = HTTPError(response)
    try:
        raise ExtractorError("Unable to download webpage", cause=http_error)
    except ExtractorError:
        wrapped = DownloadError("ERROR: Unable to download webpage", sys.exc_info())
    cause = root_cause(wrapped)
    assert cause is http_error and error_status(cause) == 429
    expected = ExtractorError("This video is unavailable", expected=True)
    assert error_message(root_cause(expected)) == "This video is unavailable"
