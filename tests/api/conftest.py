"""A real Easel server for the API tests: the real engine on a tiny SD1.5 model, the
real SQLite queue, uvicorn on a free loopback port, spoken to over HTTP with httpx."""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY_MODEL = "tiny-sd15"
SECOND_MODEL = "tiny-sd15-b"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory, tiny_sd15_dir: Path) -> Path:
    """A models folder (A1111 layout) with two copies of the engine's tiny SD1.5 model
    (tests/conftest.py), so switching the default model can be observed."""
    root = tmp_path_factory.mktemp("api-models")
    for name in (TINY_MODEL, SECOND_MODEL):
        shutil.copytree(tiny_sd15_dir, root / "Stable-diffusion" / name)
    (root / "Lora").mkdir()
    (root / "Lora" / "tiny-style.safetensors").write_bytes(b"not a real lora, only listed")
    write_tiny_vae(root / "VAE" / TINY_VAE)
    return root


TINY_VAE = "tiny-vae.safetensors"


def write_tiny_vae(path: Path) -> Path:
    """An A1111-layout VAE file (LDM keys) for the tiny SD1.5 model, other weights than its own."""
    from tests import tiny_models

    vae = tiny_models.tiny_sd15_components(seed=5)["vae"]
    state = tiny_models.vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels))
    return tiny_models.write_single_file(
        path, {k.removeprefix("first_stage_model."): v for k, v in state.items()}
    )


class LiveServer:
    """uvicorn in a background thread; the worker runs in its own thread as in production."""

    def __init__(self, app: Any, lifespan: str = "off") -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # the mounted WebUI needs the lifespan: Gradio starts its queue there
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan=lifespan)
        )
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class RunningEasel:
    url: str
    host: Any
    engine: Any
    service: Any
    settings: Any

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 120), **kwargs)

    def healthy(self) -> bool:
        with self.client(timeout=10) as client:
            return client.get("/api/v1/health").json()["status"] == "ok"


def start_easel(
    data_dir: Path, models_dir: Path, *, webui: bool = False, **settings_overrides: Any
) -> tuple[RunningEasel, LiveServer]:
    """A started host, engine and worker behind uvicorn; with ``webui`` the Gradio WebUI
    is mounted at "/" as ``easel serve`` does."""
    from core.api.app import create_app
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host
    from core.jobs import JobService, SqliteJobQueue

    settings_overrides.setdefault("safe_mode", True)  # bundled extensions only, unless asked
    settings = Settings.from_env(data_dir=data_dir, models_dir=models_dir, **settings_overrides)
    host = Host(settings).start()
    engine = Engine(host)
    service = JobService.for_engine(
        engine, SqliteJobQueue(settings.state_dir / "queue.db"), settings=settings
    )
    service.start()
    app = create_app(host, service, engine=engine)
    if webui:
        import ui

        ui.mount(app, host, service)
    live = LiveServer(app, lifespan="on" if webui else "off").start()
    return RunningEasel(live.url, host, engine, service, settings), live


@pytest.fixture(scope="session")
def easel(tmp_path_factory: pytest.TempPathFactory, tiny_models_dir: Path):
    """One server for every API test module (a model load each would cost more than the
    tests); tests leave it as they found it (no job running, default model restored)."""
    with serving(tmp_path_factory.mktemp("data"), tiny_models_dir) as running:
        yield running


# what the WebUI server below trusts besides loopback (tests/api/test_origin_guard.py)
WEBUI_ALLOWED_HOST = "mybox.lan"
WEBUI_CORS_ORIGIN = "http://trusted.example:3000"


@pytest.fixture(scope="session")
def easel_webui(tmp_path_factory: pytest.TempPathFactory, tiny_models_dir: Path):
    """A second server with the Gradio WebUI mounted at "/" (as ``easel serve``), one
    extra allowed host name and one CORS origin."""
    with serving(
        tmp_path_factory.mktemp("webui-data"),
        tiny_models_dir,
        webui=True,
        allowed_hosts=[WEBUI_ALLOWED_HOST],
        cors_allow_origins=[WEBUI_CORS_ORIGIN],
        # installs and removals go here, never into the checkout's extensions/
        extension_dirs=[tmp_path_factory.mktemp("webui-extensions") / "installed"],
    ) as running:
        yield running


@contextmanager
def serving(data_dir: Path, models_dir: Path, **options: Any) -> Iterator[RunningEasel]:
    """A started Easel on a real uvicorn server, stopped (and torch's threads restored)
    afterwards. ``options``: ``start_easel``'s (``webui``, settings overrides)."""
    import torch

    # One intra-op thread: on a shared 2-core box two torch threads fight the event loop
    # and the other processes (measured here: 0.1 s per tiny job with one thread, 1-3 s
    # with two). Restored afterwards for the other tests.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    running, live = start_easel(data_dir, models_dir, **options)
    try:
        yield running
    finally:
        live.stop()
        running.service.stop()
        running.host.stop()
        torch.set_num_threads(threads)


def start_server_process(
    data_dir: Path,
    models_dir: Path,
    port: int,
    log: Path,
    auth: tuple[str, str] | None = None,
    extensions_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """`python -m core serve` as its own process (API only; bundled extensions only, or
    also those in ``extensions_dir``); ``env``: extra EASEL_* variables."""
    # one torch thread: see the note in the `easel` fixture
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    command = [
        sys.executable, "-m", "core", "serve", "--data-dir", str(data_dir), "--models-dir", str(models_dir),
        "--port", str(port), "--no-ui",
    ]  # fmt: skip
    command += ["--extensions-dir", str(extensions_dir)] if extensions_dir else ["--safe-mode"]
    if auth:
        command += ["--api-auth", ":".join(auth)]
    return subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)


def wait_healthy(client: httpx.Client, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if client.get("/api/v1/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"server not healthy:\n{log.read_text()[-3000:]}")


# base64 images, as the A1111 API sends and returns them
def gradio_call(
    client: httpx.Client,
    api_name: str,
    data: list[Any],
    headers: dict | None = None,
    session_hash: str | None = None,
) -> Any:
    """Call a WebUI endpoint the way any page could (``/gradio_api/call/<name>``) and
    return its output list; ``{"error": ...}`` when Gradio reports an error; the POST's
    response when it is refused. ``session_hash``: the page session whose ``gr.State``
    values the event reads and sets (a fresh session without)."""
    body: dict[str, Any] = {"data": data}
    if session_hash is not None:
        body["session_hash"] = session_hash
    started = client.post(f"/gradio_api/call/{api_name}", json=body, headers=headers or {})
    if started.status_code != 200:
        return started
    stream = client.get(f"/gradio_api/call/{api_name}/{started.json()['event_id']}")
    event = None
    for line in stream.text.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            import json

            data = json.loads(line.split(":", 1)[1])
            return data if event == "complete" else {"error": data}
    raise AssertionError(f"{api_name}: no result in {stream.text[:500]}")


def b64_png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def decode(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data)))
