"""The Gradio WebUI, mounted on the same FastAPI app as the REST API.

``easel serve`` looks up ``ui.mount`` by name (the core never imports ``ui``); Gradio is
imported only when the WebUI is actually mounted.
"""

from __future__ import annotations

from typing import Any


def mount(app: Any, host: Any, service: Any) -> Any:
    """Build the WebUI and mount it at "/" of ``app`` (after the API routes)."""
    from ui.app import mount as mount_webui

    return mount_webui(app, host, service)
