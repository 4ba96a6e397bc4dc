import io
import logging
import re

from studybuddy.logs import SecretFilter, configure


def test_redacts_known_secrets_url_credentials_and_key_like_strings() -> None:
    secrets = SecretFilter(["hunter2-password"])
    text = (
        "pw hunter2-password via socks5h://sb-ab12-w0-g0:deadbeefcafe@127.0.0.1:9050 "
        "key sk-ant-api03-ABCDEFGHIJKLMNOP"
    )
    redacted = secrets.redact(text)
    assert "hunter2-password" not in redacted
    assert "deadbeefcafe" not in redacted
    assert "sk-ant-api03" not in redacted
    assert "socks5h://***@127.0.0.1:9050" in redacted


def test_filter_covers_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    secrets = SecretFilter(["topsecret"])
    configure(logging.DEBUG, secrets, logging.StreamHandler(stream))
    log = logging.getLogger("studybuddy.test")
    log.info("password is %s", "topsecret")
    try:
        raise RuntimeError("failed with topsecret inside")
    except RuntimeError:
        log.exception("boom")
    out = stream.getvalue()
    assert "topsecret" not in out
    assert "password is ***" in out
    assert "RuntimeError: failed with *** inside" in out
    logging.getLogger().handlers.clear()


def test_debug_lines_carry_milliseconds_and_others_seconds() -> None:
    lines = {}
    for level in (logging.DEBUG, logging.INFO):
        stream = io.StringIO()
        configure(level, SecretFilter([]), logging.StreamHandler(stream))
        logging.getLogger("studybuddy.test").warning("hello")
        lines[level] = stream.getvalue()
    logging.getLogger().handlers.clear()
    assert re.match(r"\d\d:\d\d:\d\d\.\d\d\d WARNING studybuddy\.test: hello$", lines[logging.DEBUG])
    assert re.match(r"\d\d:\d\d:\d\d WARNING studybuddy\.test: hello$", lines[logging.INFO])
