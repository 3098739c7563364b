"""The WebUI's uploads (issue #23, point 12): kept in the data folder, not the system
temp directory, and bounded: past the quota an upload is a 413 that names the setting."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from PIL import Image


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(client, name="a.png", data=None):
    return client.post("/gradio_api/upload", files={"files": (name, data or png(), "image/png")})


def test_uploads_land_in_the_data_folder_within_a_quota(easel_webui):
    settings = easel_webui.settings
    with easel_webui.client() as client:
        response = upload(client)
        assert response.status_code == 200, response.text
        [stored] = response.json()
        stored = Path(stored).resolve()
        assert stored.is_file() and stored.read_bytes() == png()
        # in a data folder's .easel/uploads (this server's, unless another WebUI in this
        # test process was mounted first: GRADIO_TEMP_DIR is per process)
        folder = Path(os.environ["GRADIO_TEMP_DIR"]).resolve()
        assert stored.is_relative_to(folder) and folder.parts[-2:] == (".easel", "uploads")
        assert not stored.is_relative_to(Path(tempfile.gettempdir()) / "gradio")

        quota = settings.upload_quota_mb
        try:
            used_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / (1024 * 1024)
            settings.upload_quota_mb = used_mb + 0.001  # room for about 1 KB more
            refused = upload(client, "big.png", png() + b"\0" * 4096)
            assert refused.status_code == 413, refused.text
            assert "EASEL_UPLOAD_QUOTA_MB" in refused.json()["detail"]
            assert upload(client, "small.txt", b"x" * 10).status_code == 200  # what fits still does
        finally:
            settings.upload_quota_mb = quota
        assert client.get("/api/v1/health").json()["status"] == "ok"
