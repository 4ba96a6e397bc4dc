"""Settings: defaults < `.env` / `--env-file` / `.env.debug` < environment (`STUDY_BUDDY_*`) < options.

Click reads the environment for every option (`envvar="STUDY_BUDDY_..."`), so an env file only has to put
its values into `os.environ` *before* Click parses, without overriding what the environment already says.
`.env.debug` may also use the short `DEBUG_*` names, which are translated here. An env file sets only
`STUDY_BUDDY_*`, `DEBUG_*` and `ANTHROPIC_API_KEY`: a `./.env` in a folder someone else controls must not
send the key elsewhere (`ANTHROPIC_BASE_URL`), trust their CA or use their proxy; other keys are ignored
with a warning that names them.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from studybuddy.errors import ConfigError, InputError
from studybuddy.units import ExitBudget

if TYPE_CHECKING:
    from studybuddy.proxyspec import ProxySpec
    from studybuddy.text import BadInput

ENV_PREFIX = "STUDY_BUDDY_"
DEFAULT_MODEL = "claude-sonnet-4-5"
DEBUG_ENV_FILE = ".env.debug"
ENV_FILE_PREFIXES = (ENV_PREFIX, "DEBUG_")  # what an env file may set, with ENV_FILE_KEYS
ENV_FILE_KEYS = frozenset({"ANTHROPIC_API_KEY"})
ORDERS = ("playlist", "shortest", "longest")  # --order: the order videos are taken in
NOTE_FORMATS = ("md", "json")  # --format
TRANSCRIPT_FORMATS = ("md", "txt", "srt", "vtt")  # --transcript-format
EGRESS = ("auto", "tor", "proxies", "tor,proxies")  # --egress: where YouTube traffic leaves from
TRANSCRIPT_PATHS = ("api", "ytdlp")  # --transcripts: which way in comes first
DEFAULT_IP_ECHO = "https://api.ipify.org"  # doctor --ip-echo-url: answers with the caller's address
DEFAULT_PER_EXIT = ExitBudget(8, 600.0)  # 8 videos per exit per 10 minutes: polite by default

# `.env.debug` names -> the settings they stand for.
DEBUG_ALIASES = {
    "DEBUG_PARALLEL": "STUDY_BUDDY_PARALLEL",
    "DEBUG_MAX_WORKERS": "STUDY_BUDDY_WORKERS",
    "DEBUG_URL_FILE": "STUDY_BUDDY_FILE",
    "DEBUG_URLS": "STUDY_BUDDY_URLS",
    "DEBUG_LOG_LEVEL": "STUDY_BUDDY_LOG_LEVEL",
    "DEBUG_LOG_TOR_EVENTS": "STUDY_BUDDY_LOG_TOR_EVENTS",
    "DEBUG_KEEP_TEMP": "STUDY_BUDDY_KEEP_TEMP",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a run needs, already validated. The CLI builds it from options; libraries may too."""

    output: Path = Path("notes")
    subject: str | None = None
    auto_subject: bool = False  # without `subject`: choose an existing folder by similarity, else a new one
    links: bool = True  # link related notes both ways in a marked block
    parallel: bool = False
    workers: int = 3
    proxies: tuple[ProxySpec, ...] = ()  # --proxy, --proxy-rotating, --proxy-file (see `proxies`)
    proxy_problems: tuple[BadInput, ...] = ()  # bad --proxy-file lines: reported, the others still run
    egress: str = "auto"  # auto | tor | proxies | tor,proxies (auto: proxies when any is given, else tor)
    ca_bundle: str | None = None
    languages: tuple[str, ...] = ("en",)
    translate_to: str | None = None
    notes: bool = True
    model: str = DEFAULT_MODEL
    api_key: str | None = field(default=None, repr=False)
    engine: str | None = None  # anthropic | offline; None: anthropic when api_key is set, else offline
    notes_concurrency: int = 4
    notes_per_minute: int = 40
    batch: bool = False  # notes through the Message Batches API (half the price, slower, resumable)
    batch_poll_s: float = 30.0  # seconds between two looks at a pending batch
    batch_max_wait_s: float = 25 * 3600.0  # stop waiting (the batch stays open for the next run)
    assessment: bool = True  # a second call: questions with answers in collapsed callouts
    notes_lang: str | None = None  # the language notes are written in; None: the transcript's
    max_input_tokens: int = 60_000  # estimated tokens one call may send; longer transcripts go in sections
    note_format: str = "md"  # md | json
    transcript_format: str = "md"  # md | txt | srt | vtt
    save_transcript: bool = True
    force: bool = False
    limit: int | None = None  # at most this many videos of each playlist or channel
    since: datetime.date | None = None  # only videos a playlist or channel lists as uploaded since then
    order: str = "playlist"  # playlist | shortest | longest (by listed duration)
    use_ytdlp: bool = True  # yt-dlp may fill in metadata the pages did not have
    transcripts: str = "api"  # api: youtube-transcript-api first, yt-dlp when it cannot; ytdlp: yt-dlp first
    pot_provider: str | None = None  # base URL of a bgutil PO token provider (HTTP), for yt-dlp
    cookies: Path | None = None  # Netscape cookies for yt-dlp only (the account may be flagged)
    max_retries: int = 3
    backoff_s: float = 2.0
    tor: str = "auto"  # auto | system | embedded | off
    tor_socks: str = "127.0.0.1:9050"
    tor_control: str = "127.0.0.1:9051"
    tor_password: str | None = field(default=None, repr=False)
    tor_config: Path | None = None
    per_exit: ExitBudget = DEFAULT_PER_EXIT
    exit_interval_s: float = 30.0
    exit_cooldown_s: float = 1800.0
    max_rotations: int = 5
    max_attempts: int = 8  # failed attempts in a row before a video is given up (`gave_up`)
    retry_backoff_s: float = 300.0  # first automatic retry of a failed video (doubling, capped at 6 h)
    archive: str | None = field(default=None, repr=False)  # --archive: a PostgreSQL URL (else the file)
    claim_ttl_s: float = 120.0  # a claim on a video left by a killed process expires after this
    log_tor_events: bool = False
    keep_temp: bool = False

    @property
    def thread_count(self) -> int:
        return self.workers if self.parallel else 1

    @property
    def uses_proxies(self) -> bool:
        return self.egress in ("proxies", "tor,proxies") or (self.egress == "auto" and bool(self.proxies))

    @property
    def uses_tor(self) -> bool:
        """Whether YouTube traffic goes through Tor (`--tor off` then means direct connections)."""
        return self.egress in ("tor", "tor,proxies") or (self.egress == "auto" and not self.proxies)


def parse_env_file(path: Path) -> dict[str, str]:
    """Read `KEY=value` lines (`export`, quotes and `#` comments allowed). Errors name the file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: no such env file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read env file ({exc.__class__.__name__})") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise InputError(f"{path}:{number}: expected KEY=value")
        values[key] = _unquote(value.strip())
    return values


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value.split(" #", 1)[0].rstrip()


def load_env_files(paths: Sequence[Path], environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Put the files' values into the environment; what the environment already has wins. Returns one
    warning per file that holds keys an env file may not set (they are ignored; the warning names them).

    An empty value (`KEY=`) means "not set" and is skipped.
    """
    env = os.environ if environ is None else environ
    warnings = []
    for path in paths:
        ignored = []
        for key, value in parse_env_file(path).items():
            if not (key.startswith(ENV_FILE_PREFIXES) or key in ENV_FILE_KEYS):
                ignored.append(key)
            elif value:
                env.setdefault(DEBUG_ALIASES.get(key, key), value)
        if ignored:
            warnings.append(
                f"{path}: ignored {', '.join(sorted(ignored))} (env files may set only "
                f"{ENV_PREFIX}*, DEBUG_* and {', '.join(sorted(ENV_FILE_KEYS))})"
            )
    return warnings


def env_files_for(argv: Sequence[str], cwd: Path) -> list[Path]:
    """The env files a command line asks for: `--env-file F`, `.env.debug` with `--debug`, else `./.env`."""
    files: list[Path] = []
    for index, arg in enumerate(argv):
        if arg == "--env-file" and index + 1 < len(argv):
            files.append(Path(argv[index + 1]))
        elif arg.startswith("--env-file="):
            files.append(Path(arg.split("=", 1)[1]))
    if "--debug" in argv and not files and (cwd / DEBUG_ENV_FILE).is_file():
        files.append(cwd / DEBUG_ENV_FILE)
    if (cwd / ".env").is_file():
        files.append(cwd / ".env")
    return files


def resolve_ca_bundle(explicit: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """`--ca-bundle`, else `REQUESTS_CA_BUNDLE`, else `SSL_CERT_FILE`; sessions ignore the environment."""
    env = os.environ if environ is None else environ
    for source, value in (
        ("--ca-bundle", explicit),
        ("REQUESTS_CA_BUNDLE", env.get("REQUESTS_CA_BUNDLE")),
        ("SSL_CERT_FILE", env.get("SSL_CERT_FILE")),
    ):
        if value:
            if not Path(value).is_file():
                raise ConfigError(f"{source} {value!r}: no such CA bundle file")
            return value
    return None


def parse_host_port(text: str, option: str) -> tuple[str, int]:
    """`HOST:PORT` (or just `PORT` for 127.0.0.1) -> (host, port)."""
    host, _, port = text.strip().rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{option} {text!r}: expected HOST:PORT like 127.0.0.1:9050")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_since(text: str) -> datetime.date:
    """`--since`: an ISO date (2024-01-31) or yt-dlp's 20240131."""
    for pattern in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.datetime.strptime(text.strip(), pattern).date()
        except ValueError:
            continue
    raise InputError(f"--since {text!r}: expected a date like 2024-01-31")


def _is_language_code(code: str) -> bool:
    return code.replace("-", "").isalnum() and len(code) <= 12


def parse_languages(text: str) -> tuple[str, ...]:
    """`en,de` -> ("en", "de"), in preference order."""
    codes = tuple(code.strip() for code in text.split(",") if code.strip())
    if not codes or not all(_is_language_code(code) for code in codes):
        raise InputError(f"--lang {text!r}: expected language codes like en,de")
    return codes


def check_egress(egress: str, proxies: Sequence[ProxySpec]) -> str:
    """`--egress` checked against the proxies given: proxies wanted but none given is an error."""
    if egress not in EGRESS:
        raise InputError(f"--egress {egress!r}: expected one of {', '.join(EGRESS)}")
    if "proxies" in egress and not proxies:
        raise InputError(
            f"--egress {egress}: no proxy given (use --proxy URL, --proxy-rotating URL or --proxy-file FILE)"
        )
    return egress


def check_pot_provider(url: str | None) -> str | None:
    """`--pot-provider`: an http(s)://HOST:PORT base URL (a trailing slash is dropped)."""
    if url is None or not url.strip():
        return None
    parts = urlsplit(url.strip())
    try:
        port_ok = parts.port is not None or parts.scheme in ("http", "https")
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or parts.query:
        raise InputError(
            f"--pot-provider {url!r}: expected the provider's base URL, like http://127.0.0.1:4416"
        )
    return url.strip().rstrip("/")


def parse_notes_lang(text: str | None) -> str | None:
    """`--notes-lang de` -> "de"; None or empty: notes in the transcript's language."""
    code = (text or "").strip()
    if not code:
        return None
    if not _is_language_code(code):
        raise InputError(f"--notes-lang {text!r}: expected one language code like en, de or pt-BR")
    return code
