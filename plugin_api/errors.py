"""Errors an extension raises on purpose, which the host turns into its own errors."""

from __future__ import annotations


class InvalidRequest(ValueError):
    """Refuse a request: raise it from ``validate_request``, ``transform_prompt`` or
    ``before_sample`` (the hooks before sampling starts) and the generation stops with the
    host's ``RequestError`` (a subclass of this class) naming ``field``. In the APIs that
    is an HTTP 422 naming the field: ``validate_request`` and ``transform_prompt`` run
    when a request is submitted, so nothing is queued; a ``before_sample`` refusal (the
    model must be loaded first) fails the queued job with the field in its ``error``, and
    ``/sdapi/v1`` still answers 422 in A1111's error shape. The CLI prints it and exits
    with status 2. Raised from any other hook it counts as an ordinary extension failure
    (reported, skipped).

    :param field: the request field at fault, as a client spells it, e.g.
        ``"extension_args.controlnet.units.0.image"``.
    :param message: what is wrong and, where possible, how to fix it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
