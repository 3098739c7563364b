"""Start the real Easel server (``python -m core serve``: host + engine + job service +
API + WebUI on one port) in a subprocess for browser tests, and find Chromium.

The server gets its own data folder, an extensions folder with a test extension, and a
models folder: the shipped demo model when it is there, otherwise a tiny SD1.5 model
built from configs (random weights) by ``plugin_api.testing.make_tiny_sd15``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import PROJECT_ROOT, SHIPPED_MODELS_DIR

DEMO_MODEL = "easel-demo"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS_DIR = PROJECT_ROOT / "test-artifacts"
START_TIMEOUT_S = 180.0

# A single-file extension: one working tab (with an event) and one whose builder raises
# after creating a component (which must not reach the page).
TEST_EXTENSION = """
import gradio as gr
from plugin_api import hookimpl
from plugin_api.types import SettingSpec, Tab


def _working_tab():
    gr.Markdown("Hello from the webui test extension", elem_id="webui_test_hello")
    button = gr.Button("Ping", elem_id="webui_test_ping")
    answer = gr.Textbox(label="Answer", elem_id="webui_test_answer")
    button.click(lambda: "pong", outputs=[answer])


def _broken_tab():
    gr.Textbox(label="half built", elem_id="webui_test_partial")
    raise RuntimeError("builder exploded on purpose")


@hookimpl
def ui_tabs():
    return [
        Tab(title="Test Tab", build=_working_tab, elem_id="webui_test_tab"),
        Tab(title="Broken Tab", build=_broken_tab, elem_id="webui_broken_tab"),
    ]


@hookimpl
def register_settings(register):
    register(SettingSpec(key="webui_test_tabs.greeting", default="hello", label="Greeting"))
"""


@dataclass
class RunningServer:
    url: str
    data_dir: Path
    model: str
    log_path: Path
    process: subprocess.Popen

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text("utf-8", errors="replace")[-chars:]
        except OSError:
            return ""


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def launched_chromium() -> Iterator[Any]:
    """A headless Chromium driven by Playwright, for one test module's ``browser`` fixture;
    the module is skipped, loudly, when Chromium is not installed (``make test`` installs it)."""
    import pytest

    path = chromium_path()
    if path is None:
        pytest.skip("Chromium is not installed (`make test` installs it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright  # a declared test dependency

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_models(scratch: Path) -> tuple[Path, str]:
    """The models folder and model name the browser tests generate with."""
    if (SHIPPED_MODELS_DIR / "Stable-diffusion" / DEMO_MODEL).is_dir():
        return SHIPPED_MODELS_DIR, DEMO_MODEL
    from plugin_api.testing import make_tiny_sd15

    models = scratch / "models"
    if not (models / "Stable-diffusion" / "tiny-sd15").is_dir():  # kept across a restart
        make_tiny_sd15(models / "Stable-diffusion" / "tiny-sd15")
    return models, "tiny-sd15"


def _wait_until_up(server: RunningServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + "config", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server did not answer within {START_TIMEOUT_S} s:\n{server.log_tail()}")


@contextlib.contextmanager
def running_server(scratch: Path, test_extension: bool = True) -> Iterator[RunningServer]:
    data_dir = scratch / "data"
    extensions_dir = scratch / "extensions"
    extensions_dir.mkdir(parents=True, exist_ok=True)  # the same folders again on a restart
    if test_extension:  # English-only on purpose; the zh walk (test_webui_zh_walk) goes without
        (extensions_dir / "webui_test_tabs.py").write_text(TEST_EXTENSION, "utf-8")
    models_dir, model = prepare_models(scratch)
    port = free_port()
    log_path = scratch / f"server-{port}.log"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    for name in ("EASEL_HOST", "EASEL_PORT", "EASEL_DATA_DIR", "EASEL_MODELS_DIR", "EASEL_API_AUTH"):
        env.pop(name, None)
    command = [
        sys.executable, "-m", "core", "serve",
        "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(data_dir), "--models-dir", str(models_dir),
        "--extensions-dir", str(extensions_dir), "--device", "cpu",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = RunningServer(f"http://127.0.0.1:{port}/", data_dir, model, log_path, process)
    try:
        _wait_until_up(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
