"""`--cookies`: a Netscape cookies file, checked before any work without loading yt-dlp.

The file is only read (yt-dlp gets a copy in memory, see `ytdlp_subtitles`), never written back. A line that
is not a cookie is reported by its number, never by its content: cookie values are secrets.
"""

from __future__ import annotations

import re
from pathlib import Path

from studybuddy.errors import InputError

__all__ = ["COOKIES_WARNING", "check_cookie_file"]

COOKIES_WARNING = (
    "--cookies {path}: YouTube may flag or ban the account these cookies belong to; they are sent only "
    "on yt-dlp's subtitle path, through each worker's own egress"
)
_MAGIC = re.compile(r"#( Netscape)? HTTP Cookie File")
_HTTPONLY_PREFIX = "#HttpOnly_"
_FIELDS = 7  # domain, subdomains, path, secure, expiry, name, value
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def check_cookie_file(path: Path) -> int:
    """The number of cookies in `path`; `InputError` (one line, no cookie content) when the file cannot be
    read or is not in Netscape format."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"--cookies {path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"--cookies {path}: is a directory, not a file") from None
    except PermissionError:
        raise InputError(f"--cookies {path}: permission denied") from None
    except UnicodeDecodeError:
        raise InputError(f"--cookies {path}: not a text file (expected Netscape cookies)") from None
    except OSError as error:
        raise InputError(f"--cookies {path}: cannot be read ({error.strerror or error})") from None
    if not lines or not _MAGIC.match(lines[0]):
        hint = " (JSON cookies are not supported)" if lines and lines[0].lstrip()[:1] in "[{" else ""
        raise InputError(
            f"--cookies {path}: not a Netscape cookies file: the first line must be "
            f"'# Netscape HTTP Cookie File'{hint}"
        )
    cookies = 0
    for number, line in enumerate(lines[1:], start=2):
        entry = line.removeprefix(_HTTPONLY_PREFIX)
        if not entry.strip() or entry.startswith("#"):
            continue
        fields = entry.split("\t")
        if len(fields) != _FIELDS or (fields[4] and not _NUMBER.fullmatch(fields[4])):
            raise InputError(
                f"--cookies {path}:{number}: not a Netscape cookie line (expected {_FIELDS} tab-separated "
                "fields: domain, subdomains, path, secure, expiry, name, value)"
            )
        cookies += 1
    if not cookies:
        raise InputError(f"--cookies {path}: holds no cookies")
    return cookies
