"""``register_extra_networks`` through the real host: extension files loaded by the production
loader, tags taken out of the prompt (A1111's ``<name:args>``), ``activate`` once per
request for every network, ``deactivate`` however the request ended, cards for the browser."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from core.config import BUNDLED_EXTENSION_NAMES
from core.engine import Engine
from core.errors import RequestError
from core.plugins.extra_networks import split_tags
from core.saving import parse_infotext
from plugin_api import GenerationRequest

RECORDER = textwrap.dedent(
    """
    from plugin_api import ExtraNetworkCard, ExtraNetworkSpec, InvalidRequest, hookimpl

    CALLS = []

    def activate(ctx, params_list):
        items = [p.items for p in params_list]
        CALLS.append(("activate", items, ctx.request.prompt, ctx.model.name, list(ctx.seeds)))
        if ["refuse"] in items:
            raise InvalidRequest("prompt", "the recorder refuses <recorder:refuse>")
        if ["explode"] in items:
            raise RuntimeError("activate exploded")
        if items:
            ctx.extra_params["Recorder"] = " ".join(":".join(i) for i in items)

    def deactivate(ctx):
        CALLS.append(("deactivate", ctx.request.prompt))

    def list_cards():
        return [ExtraNetworkCard(name="one", prompt="<recorder:one:1>", family="sd15")]

    @hookimpl
    def register_extra_networks(register):
        register(ExtraNetworkSpec(name="recorder", activate=activate, deactivate=deactivate, list_cards=list_cards))
    """
)
# a second extension that wants the same tag name: refused, the first keeps it
THIEF = textwrap.dedent(
    """
    from plugin_api import ExtraNetworkSpec, hookimpl

    @hookimpl
    def register_extra_networks(register):
        register(ExtraNetworkSpec(name="Recorder", activate=lambda ctx, params: None))
    """
)
# a wildcard-like transform that writes a tag: taken after the transform_prompt chain
WILDCARD = textwrap.dedent(
    """
    from plugin_api import hookimpl

    @hookimpl
    def transform_prompt(request, ctx):
        request.prompt = request.prompt.replace("__pick__", "<recorder:picked:0.5>")
    """
)


@pytest.fixture(scope="module")
def hosted(make_host, tmp_path_factory):
    folder = tmp_path_factory.mktemp("extensions")
    for name, source in {"a_recorder.py": RECORDER, "b_thief.py": THIEF, "c_wildcard.py": WILDCARD}.items():
        (folder / name).write_text(source)
    host = make_host(
        extension_dirs=[folder], safe_mode=False, disabled_extensions=set(BUNDLED_EXTENSION_NAMES)
    )
    recorder = host.extensions.records["a_recorder"].module
    return host, Engine(host), recorder.CALLS


def run(engine, calls, prompt, **extra):
    calls.clear()
    request = GenerationRequest(
        prompt=prompt, seed=7, steps=2, width=64, height=64, model="tiny-sd15", save_images=False, **extra
    )
    return engine.generate(request)


def test_tags_are_taken_out_and_activated_once_per_request(hosted):
    _, engine, calls = hosted
    result = run(engine, calls, "a red circle, <recorder:one:0.8>, blue <RECORDER:two>")
    # once for the request (batch_count 2 does not call it twice), tags in prompt order,
    # with the model loaded, the seeds drawn and the prompt already without its tags
    assert calls == [
        ("activate", [["one", "0.8"], ["two"]], "a red circle, blue", "tiny-sd15", [7]),
        ("deactivate", "a red circle, blue"),
    ]
    params = parse_infotext(result.infotexts[0])
    assert params["Recorder"] == "one:0.8 two"
    assert params["Prompt"] == "a red circle, <recorder:one:0.8>, blue <RECORDER:two>"
    assert params["Transformed prompt"] == "a red circle, blue"
    assert params["Prompt transforms"] == "a_recorder"
    # the encoder saw the prompt without tags
    plain = run(engine, calls, "a red circle, blue")
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(plain.images[0]))


def test_every_network_is_activated_even_without_tags(hosted):
    _, engine, calls = hosted
    result = run(engine, calls, "a red circle", batch_count=2)
    assert calls == [("activate", [], "a red circle", "tiny-sd15", [7, 8]), ("deactivate", "a red circle")]
    assert "Recorder" not in parse_infotext(result.infotexts[0]) and result.warnings == []


def test_a_tag_written_by_transform_prompt_is_taken_after_the_chain(hosted):
    _, engine, calls = hosted
    result = run(engine, calls, "a red circle __pick__")
    assert calls[0][:3] == ("activate", [["picked", "0.5"]], "a red circle")
    assert parse_infotext(result.infotexts[0])["Prompt transforms"] == "c_wildcard > a_recorder"


def test_unknown_tags_are_removed_with_a_warning(hosted):
    _, engine, calls = hosted
    result = run(engine, calls, "a red circle <hypernet:old:1>")
    assert result.prompt == "a red circle"
    assert len(result.warnings) == 1 and "'hypernet' is not known" in result.warnings[0]
    assert calls[0][1] == []


def test_a_refusal_is_a_request_error_and_deactivate_still_runs(hosted):
    _, engine, calls = hosted
    with pytest.raises(RequestError) as refused:
        run(engine, calls, "a red circle <recorder:refuse>")
    assert refused.value.field == "prompt" and "refuses" in str(refused.value)
    assert [c[0] for c in calls] == ["activate", "deactivate"]


def test_a_failing_activate_is_reported_and_the_image_is_made(hosted):
    _, engine, calls = hosted
    result = run(engine, calls, "a red circle <recorder:explode>")
    assert len(result.images) == 1 and [c[0] for c in calls] == ["activate", "deactivate"]
    assert any("'a_recorder' failed in activate" in w and "activate exploded" in w for w in result.warnings)


def test_duplicate_names_are_refused_and_cards_are_listed(hosted):
    host, _, _ = hosted
    assert host.extra_networks.owner("recorder") == "a_recorder"
    assert any(ext == "b_thief" and "already registered" in msg for ext, msg in host.extra_networks.problems)
    assert host.extra_network_cards() == [
        {"network": "recorder", "extension": "a_recorder", "name": "one", "prompt": "<recorder:one:1>",
         "family": "sd15", "path": None, "preview": None, "description": "", "hash": None}
    ]  # fmt: skip


def test_split_tags_is_a1111s_parse():
    assert split_tags("no tags, (a:1.2)") == ("no tags, (a:1.2)", [])
    prompt, found = split_tags("a <lora:x:0.5>, , <hypernet:y> b <not a tag>")
    assert prompt == "a, b <not a tag>"
    assert [(name, p.items, p.tag) for name, p in found] == [
        ("lora", ["x", "0.5"], "<lora:x:0.5>"),
        ("hypernet", ["y"], "<hypernet:y>"),
    ]
    (_, params), *_ = split_tags("<lora:x:0.5:te=1:unet=0.2>")[1]
    assert params.positional == ["x", "0.5"] and params.named == {"te": "1", "unet": "0.2"}


def test_lora_cards_come_from_the_bundled_extension(make_host, tmp_path_factory, tiny_sd15_dir):
    """The LoRA extension on extra networks: its files listed as cards with A1111's tag."""
    from tests.lora_files import make_peft_lora

    models = tmp_path_factory.mktemp("card-models")
    lora = make_peft_lora(tiny_sd15_dir, models / "Lora" / "outline.safetensors", seed=3)
    (models / "Lora" / "outline.preview.png").write_bytes(b"\x89PNG preview")
    host = make_host(models_dir=models)
    try:
        cards = [card for card in host.extra_network_cards() if card["network"] == "lora"]
        lora_state = host.extensions.records["lora"].module.STATE
        cards_by_name = {card["name"]: card for card in cards}
        card = cards_by_name["outline"]
        assert card["prompt"] == "<lora:outline:1>" and card["family"] == "sd15"
        assert card["path"] == str(lora) and card["preview"] == str(models / "Lora" / "outline.preview.png")
        assert card["hash"] == lora_state.library.find("outline").hash and card["extension"] == "lora"
    finally:
        host.stop()
