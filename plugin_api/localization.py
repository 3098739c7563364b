"""Texts an extension's WebUI builds at run time (messages, notes), in the page's language.

Labels need nothing: write them in English and ship ``localizations/<lang>.json`` (a flat
JSON object, English text -> translation, A1111's shape) in the extension's folder; the
WebUI translates them. A message built in a handler goes through ``translate`` with the
handler's ``gr.Request`` (declare a parameter ``request: gr.Request``)::

    translate("{count} image(s) upscaled", request, count=3)

looks ``"{count} image(s) upscaled"`` up in the tables of the page's language and fills
in the values. Without a WebUI (tests, the API) or an entry, it is the English text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# (English text, request) -> the text in the request's language; set by the WebUI
Translator = Callable[[str, Any], str]
_translator: Translator | None = None


def set_translator(translator: Translator | None) -> None:
    """Called by the WebUI when it is built (an extension never needs this)."""
    global _translator
    _translator = translator


def translate(text: str, request: Any = None, **values: Any) -> str:
    """``text`` (a ``str.format`` template when ``values`` are given) in the language of
    the page that sent ``request``; the English when nothing translates it."""
    template = text
    if _translator is not None and request is not None:
        try:
            template = _translator(text, request)
        except Exception:  # a translation must never break the handler that asked
            template = text
    if not values:
        return template
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):  # a broken translation: the English is still right
        return text.format(**values)
