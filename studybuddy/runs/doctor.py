"""`study-buddy doctor`: one screen of checks, each failed one with its fix.

Tor (reachable? bootstrapped? exits in the consensus?), each proxy (reachable, credentials accepted, the
exit IP an IP-echo service sees through the proxy itself), yt-dlp's version and JavaScript runtime, the PO
token provider (plugin installed? provider answering?), the Anthropic key (set? valid: a 1-token call, only
when asked), the CA bundle and the free disk of the output folder. A check is `ok`, `warn` (works, but
something is worth knowing) or `fail` (a run would not work: the exit code is 1).

Nothing here launches a Tor or sends a request to YouTube (a proxy is checked with a tunnel that carries
no byte); only `--check-key` spends (one token).
"""

from __future__ import annotations

import shutil
import ssl
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from studybuddy.config import Settings, parse_host_port
from studybuddy.egress.proxies import ProxyCheckError, check_proxy, dns_leak_warning, exit_ip
from studybuddy.errors import InputError, StudyBuddyError
from studybuddy.proxyspec import ProxySpec
from studybuddy.runs.preflight import POT_PLUGIN, ping_pot_provider, pot_plugin_version

__all__ = ["Check", "doctor_checks", "exit_code", "format_checks"]

LOW_DISK_BYTES = 1 << 30  # below 1 GiB: a warning
NO_DISK_BYTES = 50 << 20  # below 50 MiB: notes cannot be written for long
OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return asdict(self)


def doctor_checks(settings: Settings, *, ip_echo_url: str, check_key: bool) -> Iterator[Check]:
    """Every check, in screen order (each one is done when it is yielded)."""
    yield _tor(settings)
    for bad in settings.proxy_problems:
        yield Check("proxy file", FAIL, bad.message, "fix or remove the line; the other proxies still run")
    for spec in settings.proxies:
        yield _proxy(spec, ip_echo_url, settings.ca_bundle)
    yield _ytdlp()
    yield _js_runtime()
    yield _pot_provider(settings.pot_provider)
    yield _anthropic_key(settings.api_key, check_key, settings.model)
    yield _ca_bundle(settings.ca_bundle)
    yield _disk(settings.output)


def format_checks(checks: list[Check]) -> str:
    width = max((len(check.name) for check in checks), default=0)
    lines = []
    for check in checks:
        lines.append(f"{check.status.upper():<5} {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"{'':<5} {'':<{width}}  fix: {check.fix}")
    failed = sum(check.status == FAIL for check in checks)
    warned = sum(check.status == WARN for check in checks)
    lines.append(f"{len(checks)} checks: {failed} failed, {warned} warning(s)")
    return "\n".join(lines)


def exit_code(checks: list[Check]) -> int:
    return 1 if any(check.status == FAIL for check in checks) else 0


def _tor(settings: Settings) -> Check:
    if not settings.uses_tor:
        return Check("tor", OK, f"not used (--egress {settings.egress})")
    if settings.tor == "off":
        return Check(
            "tor", WARN, "off: YouTube traffic goes out directly", "--tor auto, or proxies (--proxy)"
        )
    from studybuddy.egress.tor import TorController

    control = parse_host_port(settings.tor_control, "--tor-control")
    where = f"{control[0]}:{control[1]}"
    if settings.tor != "embedded":
        try:
            tor = TorController.connect(control=control, password=settings.tor_password)
        except StudyBuddyError as error:
            if settings.tor == "system" or shutil.which("tor") is None:
                return Check("tor", FAIL, str(error), "start Tor with a ControlPort, or apt-get install tor")
        else:
            try:
                progress, summary = tor.bootstrap_phase()
                exits = len(tor.exit_fingerprints())
            finally:
                tor.close()
            status = OK if progress == 100 and exits else FAIL
            detail = f"at {where}: bootstrapped {progress}% ({summary}), {exits} exits in the consensus"
            return Check("tor", status, detail, None if status == OK else "wait for Tor to bootstrap")
    binary = shutil.which("tor")
    if binary is None:
        return Check("tor", FAIL, "no Tor answers and tor is not installed", "apt-get install tor")
    return Check("tor", OK, f"no Tor answers at {where}: each run launches a private one ({binary})")


def _proxy(spec: ProxySpec, ip_echo_url: str, ca_bundle: str | None) -> Check:
    name = f"proxy {spec.redacted()}"
    problem = check_proxy(spec, ca_bundle=ca_bundle)
    if problem is not None:
        return Check(name, FAIL, problem, "check the host, port and credentials; a run drops this proxy")
    try:
        address = exit_ip(spec, ip_echo_url, ca_bundle=ca_bundle)
    except ProxyCheckError as error:
        return Check(name, WARN, f"tunnels to YouTube; exit IP unknown ({error})", "--ip-echo-url URL")
    kind = "rotating, " if spec.rotating else ""
    if dns_leak_warning(spec) is not None:
        detail = f"{kind}exit IP {address}; DNS leak: this machine resolves the host names"
        return Check(name, WARN, detail, "use socks5h:// so the proxy resolves them")
    return Check(name, OK, f"{kind}exit IP {address}")


def _ytdlp() -> Check:
    from yt_dlp.version import __version__

    return Check("yt-dlp", OK, __version__)


def _js_runtime() -> Check:
    from studybuddy.youtube.ytdlp_subtitles import JS_RUNTIME_HINT, js_runtimes

    found = {name: info for name, info in js_runtimes().items() if info is not None}
    if found:
        detail = ", ".join(f"{info.name} {info.version}" for info in found.values())
        return Check("js runtime", OK, detail)
    return Check(
        "js runtime",
        WARN,
        "none found (the subtitle path skips the player JavaScript; other yt-dlp clients need one)",
        JS_RUNTIME_HINT.split(": ", 1)[1],
    )


def _pot_provider(base_url: str | None) -> Check:
    plugin = pot_plugin_version()
    if base_url is None:
        installed = f"plugin {plugin}" if plugin else "plugin not installed"
        return Check(
            "po token provider",
            WARN,
            f"not set ({installed}): captions that need a PO token fail",
            "run a bgutil PO token provider and pass --pot-provider http://127.0.0.1:4416",
        )
    if plugin is None:
        return Check(
            "po token provider", FAIL, f"{POT_PLUGIN} is not installed", "pip install 'study-buddy[pot]'"
        )
    try:
        version = ping_pot_provider(base_url)
    except InputError as error:
        return Check("po token provider", FAIL, str(error), "start the provider, or fix --pot-provider")
    return Check("po token provider", OK, f"{base_url} answers (server {version}, plugin {plugin})")


def _anthropic_key(api_key: str | None, check_key: bool, model: str) -> Check:
    if not api_key:
        return Check(
            "anthropic key", WARN, "not set: notes are written offline", "export ANTHROPIC_API_KEY=..."
        )
    if not check_key:
        return Check("anthropic key", OK, "set (not checked: --check-key spends one token)")
    return _key_call(api_key, model)


def _key_call(api_key: str, model: str) -> Check:
    import anthropic

    client = anthropic.Anthropic(api_key=api_key, max_retries=0, timeout=30.0)
    try:
        client.messages.create(model=model, max_tokens=1, messages=[{"role": "user", "content": "Hi"}])
    except anthropic.AuthenticationError:
        return Check("anthropic key", FAIL, "refused by the API (HTTP 401)", "set a valid ANTHROPIC_API_KEY")
    except anthropic.APIStatusError as error:
        return Check(
            "anthropic key", FAIL, f"a 1-token call to {model} answered HTTP {error.status_code}", "--model"
        )
    except anthropic.APIError as error:
        return Check(
            "anthropic key", WARN, f"could not be checked ({type(error).__name__})", "check the network"
        )
    finally:
        client.close()
    return Check("anthropic key", OK, f"valid (a 1-token call to {model} worked)")


def _ca_bundle(ca_bundle: str | None) -> Check:
    if ca_bundle is None:
        return Check("ca bundle", OK, "the default trust store (certifi for yt-dlp and requests)")
    try:
        context = ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as error:
        return Check("ca bundle", FAIL, f"{ca_bundle}: cannot be loaded ({error})", "--ca-bundle a PEM file")
    count = context.cert_store_stats().get("x509_ca", 0)
    return Check("ca bundle", OK, f"{ca_bundle}: {count} CA certificate(s), trusted with the defaults")


def _disk(output: Path) -> Check:
    folder = output.resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    detail = f"{free / (1 << 30):.1f} GiB free for {output}"
    if free < NO_DISK_BYTES:
        return Check("disk", FAIL, detail, "free some space or choose another --output")
    if free < LOW_DISK_BYTES:
        return Check("disk", WARN, detail, "free some space or choose another --output")
    return Check("disk", OK, detail)
