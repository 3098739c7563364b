"""The errors Easel raises on purpose: each names what was wrong (a field, a file)."""

from __future__ import annotations

from plugin_api.errors import InvalidRequest


class EaselError(Exception):
    """Base class: a problem Easel understood and can explain in one line."""


class RequestError(EaselError, InvalidRequest):
    """A generation request is invalid; ``field`` names the offending parameter.

    A subclass of ``plugin_api.InvalidRequest`` (a ``ValueError``), so an extension's own
    tests catch every refusal, the host's and its own, with ``except InvalidRequest``."""

    def __init__(self, field: str, message: str) -> None:
        InvalidRequest.__init__(self, field, message)  # sets .field, .message and the text


class SettingError(EaselError, ValueError):
    """A setting (a flag or an ``EASEL_*`` variable) has a value Easel cannot use; the
    message names the setting. The CLI prints it as one line and exits with status 2."""


class ModelError(EaselError):
    """A model file or folder cannot be listed or loaded (names the path)."""


class OutOfMemory(EaselError):
    """A request cannot fit in the device's memory even with every fallback."""
