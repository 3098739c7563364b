"""Helpers for extension authors: run your extension against a tiny real model in pytest.

    from plugin_api.testing import make_tiny_sd15, run_generation
    from plugin_api import GenerationRequest
    import my_extension

    def test_my_extension(tmp_path):
        result = run_generation([my_extension], GenerationRequest(prompt="a cat", steps=2), tmp_path)
        assert result.images

    def test_my_route(tmp_path):  # the real server: your routes, /api/v1, /sdapi/v1
        with serve([my_extension], tmp_path, settings={"my_extension.option": "x"}) as client:
            assert client.get("/my_extension/status").status_code == 200

    def test_my_section():  # what the WebUI's form section sends for these values
        assert form_section_args(my_extension, [True, 0.5]) == {"args": [0.5]}

The model is a randomly initialised SD1.5-shaped pipeline (a few MB, 64x64 images in
about a second on a CPU) with the real CLIP tokenizer, so prompts tokenize as in real use.
Nothing is downloaded.

This module imports the engine (``core``) inside its functions only: the rest of
``plugin_api`` stays free of engine imports (see the import-linter contract).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from plugin_api.types import GenerationRequest, GenerationResult

TINY_SD15_NAME = "tiny-sd15"


def tiny_sd15_components(seed: int = 0) -> dict[str, Any]:
    """The components of a tiny SD1.5-shaped pipeline (random weights from ``seed``)."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from core.config import MODEL_CONFIGS_DIR

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 16, 32, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=16,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=4,
            num_hidden_layers=3,
            vocab_size=49408,
            max_position_embeddings=77,
            projection_dim=32,
        )
    )
    tokenizer = CLIPTokenizer.from_pretrained(str(MODEL_CONFIGS_DIR / "clip_tokenizer"), model_max_length=77)
    assert len(tokenizer) == 49408, "the shipped CLIP tokenizer is incomplete"
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
        "scheduler": scheduler,
    }


def make_tiny_sd15(folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny SD1.5 diffusers folder at ``folder`` (created) and return it."""
    from diffusers import StableDiffusionPipeline

    folder = Path(folder)
    pipe = StableDiffusionPipeline(
        **tiny_sd15_components(seed),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder))
    return folder


def start_host(
    extensions: list[ModuleType],
    tmp_path: str | Path,
    *,
    model_dir: str | Path | None = None,
    settings: Mapping[str, Any] | None = None,
    **host_settings: Any,
) -> Any:
    """A started host (the real one) with the built-ins and ``extensions`` registered, a
    tiny model under ``tmp_path`` (or ``model_dir``), data under ``tmp_path / "data"``.
    ``settings``: user settings to set first (``register_settings`` keys), checked as the
    Settings tab checks them. ``host_settings``: the host's own (``api_auth="user:secret"``...).
    Stop it with ``host.stop()``.
    """
    return _start_host(extensions, tmp_path, model_dir, settings, host_settings)[0]


def _start_host(
    extensions: list[ModuleType],
    tmp_path: str | Path,
    model_dir: str | Path | None,
    settings: Mapping[str, Any] | None,
    host_settings: dict[str, Any],
) -> tuple[Any, str]:
    """(the started host, the tiny model's name)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from core.config import Settings
    from core.host import Host

    tmp_path = Path(tmp_path)
    models_dir = tmp_path / "models"
    checkpoints = models_dir / "Stable-diffusion"
    if model_dir is None:
        target = checkpoints / TINY_SD15_NAME
        if not (target / "model_index.json").exists():
            make_tiny_sd15(target)
        name = TINY_SD15_NAME
    else:
        checkpoints.mkdir(parents=True, exist_ok=True)
        link = checkpoints / Path(model_dir).name
        if not link.exists():
            link.symlink_to(Path(model_dir).resolve(), target_is_directory=True)
        name = link.name
    host_settings.setdefault("safe_mode", True)  # the bundled extensions stay out of the way
    config = Settings(data_dir=tmp_path / "data", models_dir=models_dir, **host_settings)
    host = Host(config)
    load_builtins = host.extensions.load_all

    def load_all() -> None:  # the built-ins first, then the extensions under test
        load_builtins()
        for module in extensions:
            extension_name = getattr(module, "__name__", "extension").rsplit(".", 1)[-1]
            host.extensions._register(_record(extension_name, module), module)

    host.extensions.load_all = load_all
    host.start()
    for key, value in (settings or {}).items():
        host.set_setting(key, value)
    return host, name


def _tiny_defaults(request: GenerationRequest, model: str) -> GenerationRequest:
    if request.model is None:
        request.model = model
    if request.width is None:
        request.width = 64
    if request.height is None:
        request.height = 64
    if request.steps is None:
        request.steps = 2
    return request


def run_generation(
    extensions: list[ModuleType],
    request: GenerationRequest,
    tmp_path: str | Path,
    model_dir: str | Path | None = None,
    settings: Mapping[str, Any] | None = None,
) -> GenerationResult:
    """Run ``request`` through the real engine with ``extensions`` registered, and return
    its ``GenerationResult``. A tiny SD1.5 model is built under ``tmp_path`` unless
    ``model_dir`` (a diffusers folder) is given; images are written under ``tmp_path``.
    ``settings``: user settings to set first (API 1.8), e.g. ``{"myext.words": "cat"}``.

    A refusal raises the host's ``RequestError``, a subclass of ``plugin_api.InvalidRequest``
    (``pytest.raises(InvalidRequest)``; ``.field`` names the field).
    """
    from core.engine import Engine

    host, name = _start_host(extensions, tmp_path, model_dir, settings, {})
    try:
        return Engine(host).generate(_tiny_defaults(request, name))
    finally:
        host.stop()


@contextmanager
def serve(
    extensions: list[ModuleType],
    tmp_path: str | Path,
    *,
    model_dir: str | Path | None = None,
    settings: Mapping[str, Any] | None = None,
    **host_settings: Any,
) -> Iterator[Any]:
    """The real server (native API, ``/sdapi/v1``, your ``register_api_routes``, the job
    queue and its worker) with ``extensions`` registered, for an extension's route tests::

        with serve([my_extension], tmp_path, settings={"myext.words": "cat"}) as client:
            assert client.get("/myext/stats").status_code == 200
            client.post("/sdapi/v1/txt2img", json={"prompt": "a cat", "steps": 2})

    ``client`` is an ``httpx.Client`` (FastAPI's ``TestClient``) on ``http://127.0.0.1``;
    ``client.host`` is the host (``client.host.get_setting(key)``); the tiny model is the
    only, so the default, model (send ``width``/``height`` 64 to keep it fast). ``host_settings``: e.g. ``api_auth="user:secret"`` to check
    that your routes sit behind ``--api-auth`` as the host's do.
    """
    from fastapi.testclient import TestClient

    from core.api.app import create_app
    from core.engine import Engine
    from core.jobs import JobService, SqliteJobQueue

    host = start_host(extensions, tmp_path, model_dir=model_dir, settings=settings, **host_settings)
    engine = Engine(host)
    service = JobService.for_engine(
        engine, SqliteJobQueue(host.settings.state_dir / "queue.db"), settings=host.settings
    )
    service.start()
    try:
        app = create_app(host, service, engine=engine)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            client.host = host  # type: ignore[attr-defined]
            yield client
    finally:
        service.stop()
        host.stop()


def form_section_args(
    extension: ModuleType, values: list[Any] | None = None, *, tab: str = "txt2img", host: Any = None
) -> Any:
    """What the WebUI puts into ``request.extension_args[<extension name>]`` when a user
    leaves ``values`` in the extension's form section (``ui_form_sections``) of ``tab``
    and presses Generate; None when the section sends nothing.

    The section is built as the WebUI builds it (inside a Gradio Blocks, ``build`` gets
    ``tab`` / ``host`` by name), ``values`` must hold one value per returned component
    (``None``: the components' initial values), and they go through the WebUI's own
    mapping (``to_args``, images to base64 PNG, ``{"args": [...]}`` for a list). So::

        args = form_section_args(my_extension, [True, "cool", 0.5])
        with serve([my_extension], tmp_path) as client:  # the same through /sdapi/v1
            client.post("/sdapi/v1/txt2img", json={..., "alwayson_scripts": {"my_extension": args}})

    gives your hooks the same ``extension_args`` from both front ends. ``InvalidRequest``
    from ``to_args`` is raised as it is.
    """
    import gradio as gr

    from plugin_api.form_sections import build_arguments, build_section_components, section_extension_args
    from plugin_api.types import FormSection

    name = getattr(extension, "__name__", "extension").rsplit(".", 1)[-1]
    hook = getattr(extension, "ui_form_sections", None)
    if hook is None:
        raise ValueError(f"{name} has no ui_form_sections hook")
    offered = hook(**build_arguments(hook, tab, host))
    sections = [s for s in offered or [] if isinstance(s, FormSection) and tab in s.tabs]
    if not sections:
        raise ValueError(f"{name}: ui_form_sections returned no FormSection for {tab!r}")
    section = sections[0]  # the host keeps one section per extension and tab
    with gr.Blocks():
        components = build_section_components(section, tab, host)
    if values is None:
        values = [component.value for component in components]
    if len(values) != len(components):
        raise ValueError(
            f"{name}: section {section.title!r} has {len(components)} components, got {len(values)} values"
        )
    return section_extension_args(section, list(values), name)


def _record(name: str, module: ModuleType) -> Any:
    from core.plugins.manager import ExtensionRecord

    return ExtensionRecord(name=name, source="test", path=getattr(module, "__file__", None))
