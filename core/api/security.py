"""What keeps a server that others can reach safe: HTTP Basic auth, bounded request
bodies, and paths that stay inside their folders.

Both middlewares are plain ASGI (not ``BaseHTTPMiddleware``), so streaming responses
(Server-Sent Events) pass through untouched.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import secrets
from typing import Any

MAX_BODY_BYTES = 50 * 1024 * 1024

Scope = dict[str, Any]


async def send_json(
    send: Any, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()
) -> None:
    """A whole JSON response from plain ASGI (middlewares answer before any app runs)."""
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class BasicAuthMiddleware:
    """Every HTTP request (API and WebUI) needs ``user:password`` when auth is set."""

    def __init__(self, app: Any, credentials: str) -> None:
        if ":" not in credentials:
            raise ValueError("--api-auth must be user:password")
        self.app = app
        user, password = credentials.split(":", 1)
        self._user, self._password = user.encode(), password.encode()

    def _authorised(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, encoded = value.partition(b" ")
                if scheme.lower() != b"basic":
                    return False
                try:
                    decoded = base64.b64decode(encoded, validate=True)
                except (binascii.Error, ValueError):
                    return False
                user, _, password = decoded.partition(b":")
                # compare both, always, in constant time: no timing hint about which failed
                user_ok = secrets.compare_digest(user, self._user)
                password_ok = secrets.compare_digest(password, self._password)
                return user_ok and password_ok
        return False

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or self._authorised(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send_json(
            send,
            401,
            {"detail": "authentication required"},
            [(b"www-authenticate", b'Basic realm="easel"')],
        )


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse bodies past ``max_bytes`` with 413: up front from Content-Length, and while
    streaming for chunked uploads that do not announce their size."""

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_json(send, 400, {"detail": "invalid Content-Length"})
                    return
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
        received = 0
        response_started = False
        refused = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Answer now: the framework may catch the exception below and try
                    # to send its own (400) answer, which tracking_send then drops.
                    if not response_started and not refused:
                        refused = True
                        await self._refuse(send)
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal response_started
            if refused:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, counting_receive, tracking_send)

    async def _refuse(self, send: Any) -> None:
        await send_json(
            send, 413, {"detail": f"request body too large (limit {self.max_bytes // (1024 * 1024)} MB)"}
        )
