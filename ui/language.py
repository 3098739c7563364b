"""The interface language: the browser's, unless the ``ui.language`` setting names one.

Gradio's frontend picks its translation from ``navigator.language`` when the page loads.
To honour the setting, a middleware puts a tiny script first in the page's ``<head>``,
run before the Gradio bundle, that presents the chosen language as the browser's own.
"""

from __future__ import annotations

import json
from typing import Any

from plugin_api.types import SettingSpec
from ui.i18n import LANGUAGES, language_of

LANGUAGE_SETTING = "ui.language"
AUTO = "auto"
OWNER = "webui"
# a language is named in its own language, as every language menu does
LANGUAGE_NAMES = {"auto": "auto", "en": "English", "zh-CN": "简体中文"}


_host: Any = None  # the WebUI's host, for handlers that are not given it


def register_language_setting(host: Any) -> None:
    """The WebUI's own setting, registered beside the extensions' ones."""
    global _host
    _host = host
    if host.setting_specs.get(LANGUAGE_SETTING) is None:
        host.setting_specs.add(
            SettingSpec(
                key=LANGUAGE_SETTING,
                default=AUTO,
                label="Interface language",
                choices=(AUTO, *LANGUAGES),
                description="auto follows the browser",
            ),
            OWNER,
        )


def chosen_language(host: Any) -> str:
    try:
        value = host.user_settings.get(LANGUAGE_SETTING)
    except KeyError:
        return AUTO
    return value if value in LANGUAGES else AUTO


def request_language(request: Any, host: Any = None) -> str:
    """The language of one browser request: the setting, else its Accept-Language."""
    headers = getattr(request, "headers", None) or {}
    host = host if host is not None else _host
    return language_of(headers.get("accept-language"), chosen_language(host) if host is not None else AUTO)


def language_script(language: str) -> str:
    """JavaScript that makes the page see ``language`` as the browser language."""
    if language not in LANGUAGES:
        return "/* ui.language is auto: the browser's language is used */\n"
    value = json.dumps(language)
    return (
        "(function () {\n"
        f"  var lang = {value};\n"
        "  try {\n"
        "    Object.defineProperty(navigator, 'language', { get: function () { return lang; } });\n"
        "    Object.defineProperty(navigator, 'languages', { get: function () { return [lang]; } });\n"
        "  } catch (e) { console.warn('easel: cannot set the interface language', e); }\n"
        "})();\n"
    )


class LanguageMiddleware:
    """Puts the language script first in the page's ``<head>``, ahead of Gradio's bundle.

    (Gradio's own ``head=`` is inserted by its frontend after the i18n setup has already
    read the browser language, so it is too late for this.) Pure ASGI, so streaming
    responses elsewhere (SSE, files) pass through untouched.
    """

    def __init__(self, app: Any, host: Any) -> None:
        self.app = app
        self.host = host

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET" or scope.get("path") not in ("/", ""):
            await self.app(scope, receive, send)
            return
        language = chosen_language(self.host)
        if language == AUTO:
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        chunks: list[bytes] = []

        async def capture(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            assert start is not None
            body = b"".join(chunks)
            headers = list(start.get("headers", []))
            content_type = dict(headers).get(b"content-type", b"")
            encoding = dict(headers).get(b"content-encoding", b"")
            if b"text/html" in content_type and not encoding and b"<head>" in body:
                script = f"<script>{language_script(language)}</script>".encode()
                body = body.replace(b"<head>", b"<head>" + script, 1)
                headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)


def add_language_middleware(app: Any, host: Any) -> None:
    app.add_middleware(LanguageMiddleware, host=host)
