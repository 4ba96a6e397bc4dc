"""--cookies: Netscape cookies files are accepted, anything else is one line that names the file (and the
line), never a cookie's content."""

from __future__ import annotations

from pathlib import Path

import pytest

from studybuddy.errors import InputError
from studybuddy.youtube.cookiefile import check_cookie_file

GOOD = (
    "# Netscape HTTP Cookie File\n"
    "# comment\n"
    "\n"
    ".youtube.com\tTRUE\t/\tTRUE\t1893456000\tSID\tsecret-session-value\n"
    "#HttpOnly_.youtube.com\tTRUE\t/\tTRUE\t0\tHSID\tanother-secret\n"
)


def test_a_netscape_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "cookies.txt"
    path.write_text(GOOD)
    assert check_cookie_file(path) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"name": "SID", "value": "secret-session-value"}]', "(JSON cookies are not supported)"),
        ("SID=secret-session-value; HSID=x\n", "not a Netscape cookies file"),
        ("# Netscape HTTP Cookie File\n.youtube.com\tTRUE\tsecret-session-value\n", "cookies.txt:2: not a"),
        (
            "# Netscape HTTP Cookie File\n.youtube.com\tTRUE\t/\tTRUE\tsoon\tSID\tsecret-session-value\n",
            "cookies.txt:2: not a",
        ),
        ("# Netscape HTTP Cookie File\n# nothing here\n", "holds no cookies"),
        (b"\xff\xfe\x00binary", "not a text file"),
    ],
)
def test_anything_else_is_one_line_without_cookie_values(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = tmp_path / "cookies.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(InputError) as caught:
        check_cookie_file(path)
    text = str(caught.value)
    assert text.startswith(f"--cookies {path}") and message in text
    assert "secret-session-value" not in text and "\n" not in text


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        check_cookie_file(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="is a directory"):
        check_cookie_file(tmp_path)
