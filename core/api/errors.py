"""Errors as HTTP answers: bad input is a 422 naming the field, a missing job a 404, a
job in the wrong state a 409, anything unexpected a logged 500 (the server stays up)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from core.api.images import ImageInputError
from core.errors import ModelError, RequestError
from core.jobs import JobNotFound, JobStateError, JobTimeout

log = logging.getLogger("easel.api")

MAX_MESSAGE_CHARS = 300


def field_error(field: str, message: str, status: int = 422, **extra: Any) -> JSONResponse:
    """FastAPI's validation-error shape (``detail`` with ``loc``), plus a one-line
    ``error`` that A1111 clients print (and ``extra`` keys, e.g. the ``job_id``)."""
    loc = ["body", *[part for part in field.split(".") if part]]
    return JSONResponse(
        status_code=status,
        content={
            "error": "RequestError",
            "detail": [{"loc": loc, "msg": message, "type": "value_error"}],
            "errors": f"{field}: {message}",
            **extra,
        },
    )


def _clean_validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Drop the echoed input: it may be a 1 MB prompt or a NaN that JSON cannot encode.
    cleaned = []
    for error in errors:
        cleaned.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": str(error.get("msg", ""))[:MAX_MESSAGE_CHARS],
                "type": str(error.get("type", "value_error")),
            }
        )
    return cleaned


def _log_refusal(request: Request, status: int, reason: str) -> None:
    """Every refused request is logged with its reason, so a user whose client only says
    "error" can read why in the server's log."""
    log.info("refused %s %s (%d): %s", request.method, request.url.path, status, reason[:MAX_MESSAGE_CHARS])


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = _clean_validation_errors(list(exc.errors()))
        summary = "; ".join(f"{'.'.join(d['loc'][1:]) or 'body'}: {d['msg']}" for d in detail[:5])
        _log_refusal(request, 422, summary)
        return JSONResponse(
            status_code=422, content={"error": "ValidationError", "detail": detail, "errors": summary}
        )

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        _log_refusal(request, 422, f"{exc.field}: {exc.message}")
        return field_error(exc.field, exc.message)

    @app.exception_handler(ImageInputError)
    async def image_error(request: Request, exc: ImageInputError) -> JSONResponse:
        _log_refusal(request, 422, f"{exc.field}: {exc.message}")
        return field_error(exc.field, exc.message)

    @app.exception_handler(ModelError)
    async def model_error(request: Request, exc: ModelError) -> JSONResponse:
        _log_refusal(request, 422, f"model: {exc}")
        return field_error("model", str(exc))

    @app.exception_handler(JobNotFound)
    async def job_not_found(request: Request, exc: JobNotFound) -> JSONResponse:
        _log_refusal(request, 404, f"no job {exc.args[0]!r}")
        return JSONResponse(
            status_code=404, content={"error": "NotFound", "detail": f"no job {exc.args[0]!r}"}
        )

    @app.exception_handler(JobStateError)
    async def job_state(request: Request, exc: JobStateError) -> JSONResponse:
        _log_refusal(request, 409, str(exc))
        return JSONResponse(status_code=409, content={"error": "Conflict", "detail": str(exc)})

    @app.exception_handler(JobTimeout)
    async def job_timeout(_request: Request, exc: JobTimeout) -> JSONResponse:
        return JSONResponse(status_code=504, content={"error": "Timeout", "detail": str(exc)})

    @app.exception_handler(RecursionError)
    async def too_deep(request: Request, _exc: RecursionError) -> JSONResponse:
        # A backstop: free-form JSON is depth-checked by the schemas (MAX_JSON_DEPTH), but
        # any recursive walk over input a route missed must be a 422, not a 500.
        log.warning("%s %s: input nested too deeply (RecursionError)", request.method, request.url.path)
        return field_error("body", "input nested too deeply")


class UnexpectedErrorMiddleware:
    """Turn an unexpected exception into a logged 500 JSON answer. Plain ASGI and not
    re-raised (Starlette's own handler re-raises, and the server then drops the
    connection), so the client always gets its answer and the server stays up."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.exception("unexpected error answering %s %s", scope.get("method"), scope.get("path"))
            if started:  # too late for a clean answer (a stream broke mid-way)
                return
            response = JSONResponse(
                status_code=500,
                content={
                    "error": type(exc).__name__,
                    "detail": f"internal error: {str(exc)[:MAX_MESSAGE_CHARS]}",
                },
            )
            await response(scope, receive, send)
