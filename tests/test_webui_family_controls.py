"""The WebUI's guidance controls follow the model family (ui/family_controls.py), on a
real engine with a tiny FLUX.1-dev and -schnell (diffusers folders) beside the shipped
demo model (SD1.5): the whole WebUI is built in-process and its own model-change and
CFG-change events are called, as the page fires them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from plugin_api.types import GenerationRequest
from tests import flux_files
from ui.family_controls import NEGATIVE_IGNORED_NOTE, SENT, apply_family_controls

DEV, SCHNELL, DEMO = "tiny-flux-dev", "tiny-flux-schnell", "easel-demo"


@pytest.fixture(scope="module")
def webui(tmp_path_factory):
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host
    from core.jobs import JobService, SqliteJobQueue
    from ui.app import build_blocks

    root = tmp_path_factory.mktemp("family-controls")
    checkpoints = root / "models" / "Stable-diffusion"
    flux_files.write_flux_folder(checkpoints / DEV, guidance=True)
    flux_files.write_flux_folder(checkpoints / SCHNELL, guidance=False)
    settings = Settings(data_dir=root / "data", models_dir=root / "models", safe_mode=True, device="cpu")
    host = Host(settings).start()
    engine = Engine(host)
    queue = SqliteJobQueue(host.settings.state_dir / "queue.db")
    service = JobService.for_engine(engine, queue, settings=host.settings)  # not started
    blocks = build_blocks(host, service)
    yield SimpleNamespace(engine=engine, service=service, blocks=blocks, config=blocks.get_config_file())
    queue.close()
    host.stop()


def component_id(config: dict[str, Any], elem_id: str) -> int:
    ids = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    assert len(ids) == 1, (elem_id, ids)
    return ids[0]


def event(webui, trigger: str, kind: str, output: str):
    """The handler of ``trigger``'s ``kind`` event that updates ``output`` (elem_ids), as a
    function of its inputs returning {elem_id or "state": value}."""
    config = webui.config
    source, target = component_id(config, trigger), component_id(config, output)
    found = [
        d for d in config["dependencies"] if (source, kind) in map(tuple, d["targets"]) and target in d["outputs"]
    ]  # fmt: skip
    assert len(found) == 1, found
    dependency = found[0]
    names = {c["id"]: c.get("props", {}).get("elem_id") or c["type"] for c in config["components"]}

    def call(*inputs: Any) -> dict[str, Any]:
        outputs = webui.blocks.fns[dependency["id"]].fn(*inputs)
        outputs = outputs if isinstance(outputs, tuple | list) else [outputs]
        return dict(zip([names[i] for i in dependency["outputs"]], outputs, strict=True))

    return call


def props(config: dict[str, Any], elem_id: str) -> dict[str, Any]:
    return next(c["props"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)


def test_the_form_opens_with_the_demo_models_controls(webui):
    assert webui.engine.models.default_name() == DEMO
    assert not props(webui.config, "txt2img_distilled_cfg")["visible"]
    assert props(webui.config, "txt2img_distilled_cfg")["value"] == 3.5  # Forge's default, when shown
    assert props(webui.config, "txt2img_neg_prompt")["interactive"] is not False
    assert props(webui.config, "txt2img_cfg")["value"] == 4.0  # the demo model's easel.json


@pytest.mark.parametrize("tab", ["txt2img", "img2img"])
def test_model_change_shows_the_familys_guidance_controls(webui, tab):
    model_change = event(webui, f"{tab}_model", "change", f"{tab}_distilled_cfg")
    # SD1.5 -> FLUX.1-dev: CFG 1 (its default), Distilled CFG shown at 3.5, negative disabled
    dev = model_change(DEV, 7.0, "sd15")
    assert dev[f"{tab}_cfg"]["value"] == 1.0
    assert dev[f"{tab}_distilled_cfg"]["visible"] and dev[f"{tab}_distilled_cfg"]["value"] == 3.5
    negative = dev[f"{tab}_neg_prompt"]
    assert negative["interactive"] is False and negative["info"].key == NEGATIVE_IGNORED_NOTE
    assert dev["state"] == "flux"
    # -> FLUX.1-schnell (same family: CFG and the slider's value stay): no guidance embedding
    schnell = model_change(SCHNELL, 2.0, "flux")
    assert "value" not in schnell[f"{tab}_cfg"] and schnell[f"{tab}_distilled_cfg"] == {
        "__type__": "update", "visible": False
    }  # fmt: skip
    assert schnell[f"{tab}_neg_prompt"]["interactive"] is True  # true CFG at 2 uses it
    # -> back to the demo model: its own CFG, no slider, the negative prompt works
    demo = model_change(DEMO, 1.0, "flux")
    assert demo[f"{tab}_cfg"]["value"] == 4.0 and not demo[f"{tab}_distilled_cfg"]["visible"]
    assert demo[f"{tab}_neg_prompt"]["interactive"] is True and demo[f"{tab}_neg_prompt"]["info"] is None
    assert demo["state"] == "sd15"
    # "send to" set the model with the CFG it was made with: the change keeps it
    sent = model_change(DEV, 3.0, SENT)
    assert "value" not in sent[f"{tab}_cfg"] and "value" not in sent[f"{tab}_distilled_cfg"]
    assert sent[f"{tab}_neg_prompt"]["interactive"] is True


def test_cfg_change_enables_the_negative_prompt_for_true_cfg(webui):
    cfg_change = event(webui, "txt2img_cfg", "change", "txt2img_neg_prompt")
    assert cfg_change(DEV, 1.0)["txt2img_neg_prompt"]["interactive"] is False
    assert cfg_change(DEV, 1.5)["txt2img_neg_prompt"]["interactive"] is True
    assert cfg_change(DEMO, 1.0)["txt2img_neg_prompt"]["interactive"] is True  # SD: CFG 1 is its own choice


def test_sent_values_match_what_the_engine_applies(webui):
    """What the form sends for each model is what the engine uses: validation then has
    nothing to warn about (no ignored Distilled CFG, no ignored negative prompt)."""
    cases = [
        (DEV, 1.0, 5.0, "blurry", 5.0, ""),  # Distilled CFG sent; the disabled box sends nothing
        (DEV, 2.5, 5.0, "blurry", 5.0, "blurry"),  # true CFG: the negative prompt applies
        (SCHNELL, 1.0, 5.0, "blurry", None, ""),  # no guidance embedding: no Distilled CFG
        (DEMO, 4.0, 5.0, "blurry", None, "blurry"),
    ]
    for model, cfg, distilled, negative, sent_distilled, sent_negative in cases:
        request = GenerationRequest(prompt="a fox", negative_prompt=negative, model=model, cfg_scale=cfg)
        apply_family_controls(request, webui.service, distilled)
        assert (request.distilled_cfg_scale, request.negative_prompt) == (sent_distilled, sent_negative), (
            model
        )
        checked = webui.engine._validate(request)
        assert checked.warnings == [], (model, checked.warnings)
        assert checked.request.distilled_cfg_scale == sent_distilled
