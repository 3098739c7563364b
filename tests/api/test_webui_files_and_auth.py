"""The server with the WebUI mounted (as `easel serve`) and Basic auth on: every route,
Gradio's own included, needs the credentials; Gradio's file route serves the outputs
folder and nothing else; raw ``..`` paths (sent over a plain socket, as an HTTP client
would never send them) reach nothing outside.
"""

from __future__ import annotations

import base64

import pytest
from PIL import Image

from tests.api.conftest import serving
from tests.api.rawhttp import raw_request

USER, PASSWORD = "easel", "s3cret"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
SECRET = b"a secret outside the outputs folder"
FILE_ROUTE = "/gradio_api/file="  # Gradio 6's route for files it may serve (allowed_paths)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, tiny_models_dir):
    with serving(
        tmp_path_factory.mktemp("auth-webui"), tiny_models_dir, webui=True, api_auth=f"{USER}:{PASSWORD}"
    ) as running:
        outputs = running.settings.outputs_dir
        (outputs / "txt2img-images").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (255, 0, 0)).save(outputs / "txt2img-images" / "00000-1.png")
        (running.settings.data_dir / "secret.txt").write_bytes(SECRET)
        yield running


PATHS = [
    ("GET", "/"),
    ("GET", "/config"),
    ("GET", "/gradio_api/info"),
    ("POST", "/gradio_api/queue/join"),
    ("GET", "/api/v1/health"),
    ("GET", "/sdapi/v1/progress"),
    ("GET", "/docs"),
]


@pytest.mark.parametrize(("method", "path"), PATHS)
def test_every_route_needs_the_credentials(guarded, method, path):
    for headers in (
        {},
        {"Authorization": "Basic " + base64.b64encode(f"{USER}:wrong".encode()).decode()},
        {"Authorization": "Bearer " + PASSWORD},
    ):
        response = raw_request(
            guarded.url, method, path, headers=headers, body={} if method == "POST" else None
        )
        assert response.status == 401, (path, headers, response.status)
        assert response.headers.get("www-authenticate") == 'Basic realm="easel"'


@pytest.mark.parametrize("path", ["/", "/config", "/api/v1/health", "/gradio_api/info"])
def test_with_the_credentials_the_webui_and_the_api_answer(guarded, path):
    assert raw_request(guarded.url, "GET", path, headers=AUTH).status == 200


def test_gradio_file_route_serves_the_outputs_folder(guarded):
    image = guarded.settings.outputs_dir / "txt2img-images" / "00000-1.png"
    response = raw_request(guarded.url, "GET", f"{FILE_ROUTE}{image}", headers=AUTH)
    assert response.status == 200 and response.body == image.read_bytes()
    assert raw_request(guarded.url, "GET", f"{FILE_ROUTE}{image}").status == 401  # and only with auth


def outside_files(running) -> list[str]:
    outputs = running.settings.outputs_dir
    secret = running.settings.data_dir / "secret.txt"
    return [
        str(secret),
        f"{outputs}/../secret.txt",  # raw `..` out of the outputs folder
        f"{outputs}/txt2img-images/../../secret.txt",
        "/etc/passwd",
        f"{outputs}/../state/queue.db",
        str(next(running.settings.models_dir.rglob("*.safetensors"))),
    ]


def test_gradio_file_route_refuses_everything_outside_the_outputs(guarded):
    for target in outside_files(guarded):
        response = raw_request(guarded.url, "GET", f"{FILE_ROUTE}{target}", headers=AUTH)
        assert response.status in (403, 404), (target, response.status)
        assert SECRET not in response.body and b"root:" not in response.body


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/jobs/x/images/../../../../../../etc/passwd",
        "/sdapi/v1/../../../../etc/passwd",
        "/assets/../../../../../../etc/passwd",
        "/static/../../../../../../etc/passwd",
        "/gradio_api/file=../../../../../../etc/passwd",
        "/gradio_api/file=../secret.txt",
        "/../../../../etc/passwd",
    ],
)
def test_raw_dot_dot_paths_reach_nothing_outside(guarded, path):
    response = raw_request(guarded.url, "GET", path, headers=AUTH)
    assert response.status in (400, 403, 404), (path, response.status)
    assert SECRET not in response.body and b"root:" not in response.body
