"""Host and Origin checks for every request, the mounted Gradio WebUI's included.

Loopback is not a trust boundary: any web page the user visits can send requests to
127.0.0.1. Two attacks matter (docs/api.md, "Browsers and loopback"):

- DNS rebinding: a page on ``evil.example`` re-points that name at 127.0.0.1 and then
  reads and drives the API as a same-origin page. Its requests carry ``Host:
  evil.example``, so only requests naming an allowed host are answered (400 otherwise).
- CSRF: a page posts a form or a ``no-cors`` fetch straight to ``http://127.0.0.1:7860``.
  The browser sends its ``Origin`` (and ``Sec-Fetch-Site: cross-site``), so state-changing
  requests from a foreign origin are refused with 403. Clients that are not browsers
  (curl, A1111 client libraries) send no Origin and keep working.

CORS: only the origins given with ``--cors-allow-origins`` get ``Access-Control-*``
headers. Gradio adds its own, echoing any origin when the Host is not localhost; this
middleware sits outside everything (``EaselApp.build_middleware_stack``) and drops every
``Access-Control-*`` header the inner app set before adding its own.

Plain ASGI, so streaming responses (Server-Sent Events) pass through untouched.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.api.security import send_json

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# bind addresses that mean "every interface", not a name a browser would send
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CORS_METHODS = "GET, POST, DELETE"
CORS_HEADERS = "Authorization, Content-Type"
_NAME = re.compile(r"[a-z0-9_.-]+")

Scope = dict[str, Any]


def host_name(value: str) -> str | None:
    """The lower-case host name in a ``Host`` header (``name[:port]``, ``[v6][:port]``);
    None when it is malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1 :]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        try:
            return str(ipaddress.IPv6Address(value[1:end]))
        except ValueError:
            return None
    name, sep, port = value.partition(":")
    if sep and not port.isdigit():
        return None
    name = name.rstrip(".")  # "localhost." is the same name as "localhost"
    return name if name and _NAME.fullmatch(name) else None


def origin_host(origin: str) -> str | None:
    """The host name of an ``Origin`` (``scheme://host[:port]``); None for ``null`` or
    anything that is not an http(s) origin."""
    try:
        parts = urlsplit(origin.strip())
        hostname = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or not hostname:
        return None
    return host_name(f"[{hostname}]" if ":" in hostname else hostname)


def normalise_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


@dataclass(frozen=True)
class OriginPolicy:
    """Which hosts are answered, and which origins may call across sites."""

    allowed_hosts: frozenset[str]
    cors_origins: frozenset[str]
    any_host: bool = False  # "--allowed-hosts '*'": the user turned the Host check off

    @classmethod
    def build(
        cls, allowed_hosts: Iterable[str] = (), cors_origins: Iterable[str] = (), bind: str = ""
    ) -> OriginPolicy:
        names = set(LOOPBACK_HOSTS)
        any_host = False
        for entry in allowed_hosts:
            entry = entry.strip()
            if entry == "*":
                any_host = True
            elif entry:
                name = host_name(entry)
                if name is None:
                    raise ValueError(f"--allowed-hosts: {entry!r} is not a host name")
                names.add(name)
        if bind.strip() not in WILDCARD_BINDS:  # a specific address the user chose to bind
            bound = host_name(f"[{bind}]" if ":" in bind else bind)
            if bound:
                names.add(bound)
        return cls(
            frozenset(names), frozenset(normalise_origin(o) for o in cors_origins if o.strip()), any_host
        )

    @classmethod
    def from_settings(cls, settings: Any, extra_cors_origins: Iterable[str] = ()) -> OriginPolicy:
        return cls.build(
            getattr(settings, "allowed_hosts", ()),
            [*getattr(settings, "cors_allow_origins", ()), *extra_cors_origins],
            getattr(settings, "host", ""),
        )

    def host_allowed(self, name: str | None) -> bool:
        return name is not None and (self.any_host or name in self.allowed_hosts)

    def cors_allowed(self, origin: str | None) -> bool:
        return origin is not None and normalise_origin(origin) in self.cors_origins

    def same_site_origin(self, origin: str, request_host: str | None) -> bool:
        """An origin this server may take state changes from: the page's host is one of
        this server's names (the WebUI's own page: the request's own Host, already
        checked, or an allowed name) or a CORS origin the user listed."""
        if self.cors_allowed(origin):
            return True
        name = origin_host(origin)
        return name is not None and (name == request_host or name in self.allowed_hosts)


async def _refuse(send: Any, status: int, detail: str, scope_type: str) -> None:
    if scope_type == "websocket":
        # closing before accepting makes the server answer the handshake with 403
        await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
        return
    await send_json(send, status, {"detail": detail})


class OriginGuardMiddleware:
    """Refuse foreign Hosts (400) and cross-site state changes (403); own CORS."""

    def __init__(self, app: Any, policy: OriginPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, str] = {}
        for name, value in scope.get("headers", []):
            headers.setdefault(name.lower(), value.decode("latin-1"))
        raw_host = headers.get(b"host", "")
        request_host = host_name(raw_host)
        if not self.policy.host_allowed(request_host):
            await _refuse(
                send,
                400,
                f"Host {raw_host[:100]!r} is not allowed. Easel answers requests for localhost, 127.0.0.1 "
                "and [::1], and for the names given with --allowed-hosts (EASEL_ALLOWED_HOSTS): a foreign "
                "Host is how DNS rebinding reaches a local server.",
                kind,
            )
            return
        origin = headers.get(b"origin")
        method = scope.get("method", "GET").upper() if kind == "http" else "WEBSOCKET"
        if (
            kind == "http"
            and method == "OPTIONS"
            and origin is not None
            and b"access-control-request-method" in headers
        ):
            await self._preflight(send, origin)
            return
        if method not in SAFE_METHODS:
            problem = self._cross_site(origin, request_host, headers.get(b"sec-fetch-site"))
            if problem is not None:
                await _refuse(send, 403, problem, kind)
                return
        if kind == "websocket":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, self._cors_send(send, origin))

    def _cross_site(self, origin: str | None, request_host: str | None, fetch_site: str | None) -> str | None:
        """Why a state-changing request is refused, or None. A browser always sends Origin
        on such requests; Sec-Fetch-Site catches what Origin alone might not."""
        if origin is not None and not self.policy.same_site_origin(origin, request_host):
            return (
                f"cross-site request refused: Origin {origin[:100]!r} is not this server. Pages on other "
                "sites may not change anything here (CSRF); list trusted origins with "
                "--cors-allow-origins (EASEL_CORS_ALLOW_ORIGINS)."
            )
        if (fetch_site or "").strip().lower() == "cross-site" and not self.policy.cors_allowed(origin):
            return (
                "cross-site request refused (Sec-Fetch-Site: cross-site): pages on other sites may not "
                "change anything here (CSRF); list trusted origins with --cors-allow-origins."
            )
        return None

    async def _preflight(self, send: Any, origin: str) -> None:
        if not self.policy.cors_allowed(origin):
            await _refuse(send, 403, f"CORS: origin {origin[:100]!r} is not in --cors-allow-origins", "http")
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-allow-methods", CORS_METHODS.encode()),
                    (b"access-control-allow-headers", CORS_HEADERS.encode()),
                    (b"access-control-max-age", b"600"),
                    (b"vary", b"Origin"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    def _cors_send(self, send: Any, origin: str | None) -> Any:
        allowed = self.policy.cors_allowed(origin)

        async def cors_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                # drop whatever CORS the inner apps chose (Gradio echoes any origin)
                kept = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if not k.lower().startswith(b"access-control-")
                ]
                if allowed and origin is not None:
                    kept += [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
                message = {**message, "headers": kept}
            await send(message)

        return cors_send
