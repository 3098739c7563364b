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

import string
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
    return fill(template, text, values) if values else template


def _fields(template: str) -> list[str] | None:
    """The replacement fields of ``template``; None when it cannot be parsed."""
    try:
        return [
            field
            for _literal, field, _spec, _conversion in string.Formatter().parse(template)
            if field is not None
        ]
    except ValueError:
        return None


def fill(translated: str, english: str, values: dict[str, Any]) -> str:
    """``translated`` with ``values`` filled in, if it asks for exactly the English
    template's plain fields (``{name}``; a translation file is untrusted: no attribute or
    index look-ups, no other fields); otherwise the English, which is always right."""
    wanted = _fields(english)
    got = _fields(translated)
    if (
        got is not None
        and wanted is not None
        and set(got) <= set(wanted)
        and all(f.isidentifier() for f in got)
    ):
        try:
            return translated.format(**values)
        except (KeyError, IndexError, ValueError):
            pass
    return english.format(**values)
