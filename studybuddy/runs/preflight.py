"""Checks a run makes before any work, when it has something to fetch: the proxies (each one that refuses the
connection or the credentials is dropped with a warning; the run stops only when none is left), the PO
token provider (`--pot-provider` must answer, and yt-dlp must have the plugin that talks to it) and the
cookies warning. `doctor` shows the same checks one by one.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import logging
from collections.abc import Callable

import requests

from studybuddy.config import Settings
from studybuddy.egress.proxies import check_proxy, dns_leak_warning, usable_proxies
from studybuddy.errors import ConfigError, InputError
from studybuddy.proxyspec import ProxySpec
from studybuddy.youtube.cookiefile import COOKIES_WARNING

__all__ = [
    "POT_PLUGIN",
    "check_before_run",
    "ping_pot_provider",
    "pot_plugin_version",
]

log = logging.getLogger(__name__)

POT_PLUGIN = "bgutil-ytdlp-pot-provider"  # the yt-dlp plugin that asks a bgutil provider for PO tokens
PING_TIMEOUT_S = 5.0


def check_before_run(settings: Settings, warn: Callable[[str], None]) -> Settings:
    """`settings` with only the proxies that work; raises `InputError` or `ConfigError` (one line) when the
    run cannot start: no proxy left with `--egress proxies`, a provider that does not answer."""
    if settings.uses_proxies:
        settings = dataclasses.replace(settings, proxies=_working_proxies(settings, warn))
    if settings.pot_provider is not None:
        if pot_plugin_version() is None:
            raise ConfigError(
                f"--pot-provider needs yt-dlp's {POT_PLUGIN} plugin: pip install 'study-buddy[pot]'"
            )
        version = ping_pot_provider(settings.pot_provider)
        log.info("PO token provider at %s answers (version %s)", settings.pot_provider, version)
    if settings.cookies is not None:
        warn(COOKIES_WARNING.format(path=settings.cookies))
    return settings


def _working_proxies(settings: Settings, warn: Callable[[str], None]) -> tuple[ProxySpec, ...]:
    for spec in settings.proxies:
        leak = dns_leak_warning(spec)
        if leak is not None:
            warn(leak)
    check = functools.partial(check_proxy, ca_bundle=settings.ca_bundle)
    usable = usable_proxies(settings.proxies, warn, check=check)
    if not usable:
        if not settings.uses_tor:
            raise InputError(
                "no proxy can be used (each one was dropped, see above): nothing to fetch through"
            )
        warn("no proxy can be used (see above): this run goes through Tor only")
    return usable


def ping_pot_provider(base_url: str, *, timeout_s: float = PING_TIMEOUT_S) -> str:
    """The version a bgutil provider reports on `GET /ping`; `InputError` when it does not answer so.

    Asked directly (no proxy): the provider runs on this machine or the local network.
    """
    session = requests.Session()
    session.trust_env = False
    try:
        response = session.get(f"{base_url}/ping", timeout=timeout_s)
        response.raise_for_status()
        data = response.json()
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        raise InputError(f"--pot-provider {base_url}: GET /ping answered HTTP {status}") from None
    except requests.RequestException as error:
        raise InputError(
            f"--pot-provider {base_url}: does not answer ({_reason(error)}); is the provider running?"
        ) from None
    except ValueError:
        raise InputError(
            f"--pot-provider {base_url}: GET /ping did not answer JSON (not a bgutil provider?)"
        ) from None
    finally:
        session.close()
    version = data.get("version") if isinstance(data, dict) else None
    return str(version) if version else "unknown"


def pot_plugin_version() -> str | None:
    """The installed version of yt-dlp's PO token provider plugin, or None."""
    try:
        return importlib.metadata.version(POT_PLUGIN)
    except importlib.metadata.PackageNotFoundError:
        return None


def _reason(error: requests.RequestException) -> str:
    if isinstance(error, requests.ConnectTimeout | requests.ReadTimeout):
        return "timed out"
    if isinstance(error, requests.ConnectionError):
        return "connection refused or unreachable"
    return type(error).__name__
