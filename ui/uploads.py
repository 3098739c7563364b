"""Where the WebUI's uploads go, and how much room they may take.

Gradio keeps every uploaded file in its cache folder, by default under the system temp
directory: outside the data folder, shared with other users of the machine, unbounded.
Easel points it at ``<data dir>/.easel/uploads`` and refuses an upload with 413 once the
folder holds ``upload_quota_mb`` (``EASEL_UPLOAD_QUOTA_MB``) or the upload would pass it;
Gradio's own cache clean-up removes day-old files, so the room comes back.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from core.api.security import send_json

log = logging.getLogger("easel.ui")

MB = 1024 * 1024
# Gradio's clean-up: every hour, files older than a day (Blocks(delete_cache=...))
DELETE_CACHE = (3600, 86400)


def uploads_dir(settings: Any) -> Path:
    return Path(settings.state_dir) / "uploads"


def folder_bytes(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (links are not followed)."""
    total, pending = 0, [folder]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


class UploadQuotaMiddleware:
    """413 for an upload that the uploads folder has no room for (pure ASGI: it answers
    before Gradio reads the body)."""

    def __init__(self, app: Any, host: Any, folder: Path) -> None:
        self.app, self.host, self.folder = app, host, folder

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not scope.get("path", "").endswith("/upload")
        ):
            await self.app(scope, receive, send)
            return
        quota = int(float(self.host.settings.upload_quota_mb) * MB)
        incoming = 0
        for key, value in scope.get("headers", []):
            if key == b"content-length" and value.isdigit():
                incoming = int(value)
        used = folder_bytes(self.folder)
        if used + incoming > quota:
            log.warning("upload refused: %s holds %d bytes, the quota is %d", self.folder, used, quota)
            await send_json(
                send,
                413,
                {
                    "detail": (
                        f"the uploads folder ({self.folder.name}) is full: {used / MB:.1f} MB used, this upload "
                        f"{incoming / MB:.1f} MB, quota {quota / MB:g} MB (EASEL_UPLOAD_QUOTA_MB); "
                        "uploads older than a day are deleted"
                    )
                },
            )
            return
        await self.app(scope, receive, send)


def keep_uploads_in_data_folder(app: Any, host: Any) -> Path:
    """Point Gradio's upload folder into the data folder and bound it; call before the
    Blocks are built (Gradio reads the folder then). A GRADIO_TEMP_DIR the user set wins."""
    folder = uploads_dir(host.settings)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GRADIO_TEMP_DIR", str(folder))
    folder = Path(os.environ["GRADIO_TEMP_DIR"])
    app.add_middleware(UploadQuotaMiddleware, host=host, folder=folder)
    return folder
