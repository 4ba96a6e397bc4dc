"""Who may drive the web UI: the holder of its secret token, through an address the server is bound to.

A pure ASGI middleware in front of every route. The token comes once in the URL the CLI prints
(`/?token=...`, as Jupyter does); the guard then puts it in an HttpOnly, SameSite=Strict cookie and
redirects to the same address without it, so it does not linger in the address bar or in history. Every
request must also name an allowed `Host` (a DNS-rebinding page names its own host) and, when it carries an
`Origin` (or, for a form post, a `Referer`), that same host as its origin (a cross-site form cannot post).
Refusals are a 403 with one line of text.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "study_buddy_token"
TOKEN_PARAM = "token"  # noqa: S105 - the name of a parameter
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NO_TOKEN = "Forbidden: wrong or missing token. Open the address that `study-buddy ui` printed."  # noqa: S105
BAD_HOST = "Forbidden: this server answers only to the address it was started on (Host {host!r})."
BAD_ORIGIN = "Forbidden: requests from another site ({origin!r}) may not drive study-buddy."
NO_ORIGIN = "Forbidden: a form post must say where it comes from (no Origin or Referer header)."


WILDCARDS = ("0.0.0.0", "::")  # noqa: S104 - recognised, not bound here


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """The `Host` values that name this server: the bound address, and the loopback names when loopback.
    None for a wildcard address (`--host 0.0.0.0`): the machine may be reached under any of its names, so
    only the token and the Origin check guard it (the CLI warns)."""
    if host in WILDCARDS:
        return None
    names = {host}
    if host in ("127.0.0.1", "localhost", "::1"):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    elif ":" in host:
        names = {f"[{host}]"}
    return frozenset(f"{name}:{port}" for name in names)


class TokenGuard:
    """Checks the token (query or cookie), the Host and the Origin of every HTTP request."""

    def __init__(self, app: ASGIApp, *, token: str, hosts: Iterable[str] | None) -> None:
        self.app = app
        self.token = token
        self.hosts = frozenset(hosts) if hosts is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        problem = self._problem(scope, headers)
        if problem is not None:
            await PlainTextResponse(problem + "\n", status_code=403)(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        given = query.pop(TOKEN_PARAM, None)
        if given is not None and scope["method"] == "GET":  # first visit: the token moves to a cookie
            target = scope["path"] + (f"?{urlencode(query)}" if query else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _problem(self, scope: Scope, headers: Headers) -> str | None:
        host = headers.get("host", "")
        if self.hosts is not None and host not in self.hosts:
            return BAD_HOST.format(host=host)
        origin = headers.get("origin")
        if origin is None and scope["method"] not in _SAFE_METHODS:
            referer = headers.get("referer")
            if referer is None:
                return NO_ORIGIN
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
        if origin is not None and urlsplit(origin).netloc != host:  # same origin: the page came from here
            return BAD_ORIGIN.format(origin=origin)
        if not self._has_token(scope, headers):
            return NO_TOKEN
        return None

    def _has_token(self, scope: Scope, headers: Headers) -> bool:
        cookie = SimpleCookie()
        cookie.load(headers.get("cookie", ""))
        candidates = [cookie[COOKIE].value] if COOKIE in cookie else []
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if TOKEN_PARAM in query:
            candidates.append(query[TOKEN_PARAM])
        return any(hmac.compare_digest(c.encode(), self.token.encode()) for c in candidates)
