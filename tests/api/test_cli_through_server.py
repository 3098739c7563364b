"""`easel generate` with an `easel serve` running on the same data folder: the job goes to
the server's queue (no second model in the CLI, no torch import), gives the same image as a
local run, and refusals and progress look as they do locally."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import numpy as np
from PIL import Image

from core.cli import server_link
from tests.api.conftest import TINY_MODEL, free_port, start_server_process, wait_healthy

ARGS = [
    "a red circle",
    "--model",
    TINY_MODEL,
    "--seed",
    "11",
    "--steps",
    "3",
    "--width",
    "64",
    "--height",
    "64",
]


def run_cli(*args: str, data_dir, models_dir) -> subprocess.CompletedProcess:
    """The real CLI in a fresh interpreter, reporting whether it imported torch."""
    code = (
        "import sys; from core.cli.main import main; rc = main(sys.argv[1:]); "
        "print('TORCH-IMPORTED' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr); sys.exit(rc)"
    )
    command = [sys.executable, "-c", code, "generate", *args, "--data-dir", str(data_dir),
               "--models-dir", str(models_dir), "--safe-mode"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_generate_uses_the_running_server_and_matches_a_local_run(tmp_path, tiny_models_dir):
    data_dir, log, port = tmp_path / "data", tmp_path / "server.log", free_port()
    process = start_server_process(data_dir, tiny_models_dir, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            wait_healthy(client, process, log)
            announced = json.loads((data_dir / ".easel" / "server.json").read_text())
            assert announced == {"url": url, "pid": process.pid, "auth": False}

            remote = run_cli(*ARGS, data_dir=data_dir, models_dir=tiny_models_dir)
            assert remote.returncode == 0, remote.stderr
            assert "NO-TORCH" in remote.stderr and f"queued on {url}" in remote.stderr
            assert "3/3" in remote.stderr  # the progress bar followed the server's steps
            (remote_path,) = remote.stdout.split()
            assert remote_path.startswith(str(data_dir / "outputs" / "txt2img-images"))

            jobs = client.get("/api/v1/jobs").json()["jobs"]
            assert len(jobs) == 1 and jobs[0]["status"] == "done" and jobs[0]["result"]["seeds"] == [11]
            assert jobs[0]["result"]["files"] == [os.path.relpath(remote_path, data_dir / "outputs")]

            local = run_cli(*ARGS, "--local", data_dir=data_dir, models_dir=tiny_models_dir)
            assert local.returncode == 0, local.stderr
            assert "TORCH-IMPORTED" in local.stderr
            (local_path,) = local.stdout.split()
            assert local_path != remote_path and client.get("/api/v1/jobs").json()["total"] == 1
            # One set of defaults either way: the same request gives the same pixels.
            assert np.array_equal(pixels(remote_path), pixels(local_path))
            assert Image.open(remote_path).info["parameters"] == Image.open(local_path).info["parameters"]

            refused = run_cli("x", "--steps", "0", data_dir=data_dir, models_dir=tiny_models_dir)
            assert refused.returncode == 2
            assert "easel generate: steps: Input should be greater than or equal to 1" in refused.stderr
            unknown = run_cli("x", "--model", "no-such-model", data_dir=data_dir, models_dir=tiny_models_dir)
            assert unknown.returncode == 2 and "no-such-model" in unknown.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert not (data_dir / ".easel" / "server.json").exists()  # withdrawn on a clean stop


def test_a_stale_announcement_is_ignored(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(finished.stdout)
    server_link.announce(tmp_path, "http://127.0.0.1:9", needs_auth=False)
    assert (tmp_path / "server.json").stat().st_mode & 0o777 == 0o600
    payload = json.loads((tmp_path / "server.json").read_text())
    (tmp_path / "server.json").write_text(json.dumps(payload | {"pid": dead_pid}))
    assert server_link.announced_server(tmp_path) is None
    (tmp_path / "server.json").write_text(json.dumps(payload))  # alive (this process), nothing listens
    assert server_link.announced_server(tmp_path) is None
    (tmp_path / "server.json").write_text("{half a fi")
    assert server_link.announced_server(tmp_path) is None


def test_withdraw_leaves_a_newer_servers_announcement(tmp_path):
    server_link.announce(tmp_path, "http://127.0.0.1:1", needs_auth=False)
    payload = json.loads((tmp_path / "server.json").read_text())
    (tmp_path / "server.json").write_text(json.dumps(payload | {"pid": payload["pid"] + 1}))
    server_link.withdraw(tmp_path)
    assert (tmp_path / "server.json").exists()


def test_client_url_reaches_a_server_bound_everywhere_on_loopback():
    assert server_link.client_url("0.0.0.0", 7860) == "http://127.0.0.1:7860"
    assert server_link.client_url("::1", 7860) == "http://[::1]:7860"
    assert server_link.client_url("127.0.0.1", 80) == "http://127.0.0.1:80"
