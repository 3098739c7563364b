"""Errors an extension raises on purpose, which the host turns into its own errors."""

from __future__ import annotations


class InvalidRequest(ValueError):
    """Refuse a request: raise it from ``validate_request``, ``transform_prompt`` or
    ``before_sample`` and the generation stops with the host's ``RequestError`` naming
    ``field`` (an HTTP 422 where the API validates, a failed job otherwise). Raised from
    any other hook it counts as an ordinary extension failure (reported, skipped).

    :param field: the request field at fault, as a client spells it, e.g.
        ``"extension_args.controlnet.units.0.image"``.
    :param message: what is wrong and, where possible, how to fix it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
