"""The FastAPI application: native API, A1111-compatible API, extension routes, and the
safety layers around them. The WebUI is mounted on the same app afterwards."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, FastAPI

from core import __version__
from core.api.catalog import Catalog
from core.api.errors import UnexpectedErrorMiddleware, install_error_handlers
from core.api.native import build_native_router
from core.api.origin import OriginGuardMiddleware, OriginPolicy
from core.api.sdapi import build_sdapi_router
from core.api.security import MAX_BODY_BYTES, BasicAuthMiddleware, BodyLimitMiddleware
from core.jobs import JobService

log = logging.getLogger("easel.api")


class EaselApp(FastAPI):
    """FastAPI with the Host/Origin guard outside every other layer, whenever a layer
    is added: ``add_middleware`` puts the newest outermost, and the WebUI adds its own
    (language, Gradio's CORS) after ``create_app``; the guard must still see every
    request first and every response header last."""

    origin_policy: OriginPolicy

    def build_middleware_stack(self) -> Any:
        return OriginGuardMiddleware(super().build_middleware_stack(), self.origin_policy)


def create_app(
    host: Any,
    service: JobService,
    *,
    engine: Any | None = None,
    cors_allow_origins: list[str] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    on_shutdown: list[Callable[[], None]] | None = None,
) -> FastAPI:
    """The app with every API route. Mount the WebUI at "/" only after this (routes added
    after a mount at "/" are shadowed). Auth comes from ``host.settings.api_auth``."""
    engine = engine if engine is not None else service.engine
    catalog = Catalog(host, engine)
    service.default_model = catalog.default_model  # the WebUI's jobs follow it too

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        # uvicorn re-raises SIGTERM/SIGINT after shutting down, so code after
        # uvicorn.run() may never run: stop the worker here, where it always does.
        for callback in on_shutdown or ():
            try:
                callback()
            except Exception:
                log.exception("error while shutting down")

    app = EaselApp(
        lifespan=lifespan,
        title="Easel",
        version=__version__,
        description="Native job API (/api/v1) and the AUTOMATIC1111-compatible API (/sdapi/v1).",
    )
    app.state.host, app.state.service, app.state.catalog = host, service, catalog
    app.origin_policy = OriginPolicy.from_settings(host.settings, cors_allow_origins or ())
    install_error_handlers(app)
    app.include_router(build_native_router(host, service, catalog))
    app.include_router(build_sdapi_router(host, service, catalog))

    extension_router = APIRouter(tags=["extensions"])
    host.register_api_routes(extension_router)  # each extension isolated by the host
    app.include_router(extension_router)

    # Middlewares wrap in reverse order (the last added runs first). Outside them all,
    # EaselApp's Host/Origin guard (which also answers CORS preflights, which carry no
    # credentials); then auth (an unauthenticated client cannot even make the server
    # read its body), then the body limit, then the catch-all that turns unexpected
    # errors into a 500 answer.
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    if host.settings.api_auth:
        app.add_middleware(BasicAuthMiddleware, credentials=host.settings.api_auth)
    return app
