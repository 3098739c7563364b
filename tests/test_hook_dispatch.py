"""Hook dispatch: isolation of failing implementations, chains, merges, registries."""

import logging
import textwrap

import pytest
import torch

from core.config import BUNDLED_EXTENSION_NAMES, Settings
from core.host import Host
from core.plugins.generation_hooks import merge_denoiser_kwargs
from plugin_api import GenerationContext, GenerationRequest, StepState, Tab


@pytest.fixture
def make_host(tmp_path):
    ext_dir = tmp_path / "exts"
    ext_dir.mkdir()

    def make(**sources):
        for name, source in sources.items():
            (ext_dir / f"{name}.py").write_text(textwrap.dedent(source), "utf-8")
        # only the throwaway extensions: bundled ones (zh_prompt has a tab) would add results
        settings = Settings.from_env(
            data_dir=tmp_path / "data",
            extension_dirs=[ext_dir],
            disabled_extensions=set(BUNDLED_EXTENSION_NAMES),
        )
        return Host(settings).start()

    return make


def new_ctx(prompt="p"):
    request = GenerationRequest(prompt=prompt)
    return request, GenerationContext(request=request, original_prompt=prompt, original_negative_prompt="")


HEADER = "from plugin_api import hookimpl, SamplerSpec, UpscalerSpec, SettingSpec, Tab\n"


def test_register_hooks_are_isolated_and_duplicates_refused(make_host):
    host = make_host(
        a_ok=HEADER + "@hookimpl\ndef register_samplers(register):\n"
        "    register(SamplerSpec(name='Mine', make_scheduler=dict, aliases=('k_mine',)))\n",
        b_dupe=HEADER + "@hookimpl\ndef register_samplers(register):\n"
        "    register(SamplerSpec(name='mine', make_scheduler=dict))\n"
        "    register('not a spec')\n",
        c_raises=HEADER + "from plugin_api import PreprocessorSpec\n"
        "@hookimpl\ndef register_samplers(register):\n    raise ValueError('nope')\n"
        "@hookimpl\ndef register_upscalers(register):\n"
        "    register(UpscalerSpec(name='Twice', upscale=lambda image, scale: image, scale=2))\n"
        "@hookimpl\ndef register_preprocessors(register):\n"
        "    register(PreprocessorSpec(name='identity', process=lambda image: image))\n"
        "@hookimpl\ndef register_settings(register):\n"
        "    register(SettingSpec(key='c.mode', default='x', choices=('x', 'y')))\n",
    )
    assert host.samplers.get("K_MINE").name == "Mine"
    assert host.samplers.owner("mine") == "a_ok"
    assert [p[0] for p in host.samplers.problems] == ["b_dupe", "b_dupe"]
    failures = host.extensions.records["c_raises"].failures
    assert failures[0].hook == "register_samplers" and "nope" in failures[0].error
    # the same extension's other hooks still ran
    assert host.get_setting("c.mode") == "x"
    assert host.upscalers.get("twice").scale == 2
    assert host.preprocessors.get("identity").process("img") == "img"
    host.set_setting("c.mode", "y")
    assert host.get_setting("c.mode") == "y"
    with pytest.raises(ValueError, match="must be one of"):
        host.set_setting("c.mode", "z")


def test_transform_prompt_failure_is_rolled_back_and_chain_continues(make_host):
    host = make_host(
        a_half=HEADER + "@hookimpl\ndef transform_prompt(request):\n"
        "    request.prompt = 'garbage'\n    raise RuntimeError('half done')\n",
        b_good=HEADER + "@hookimpl\ndef transform_prompt(request):\n    request.prompt += ' ok'\n",
    )
    request, ctx = new_ctx("cat")
    host.generation_hooks.transform_prompt(request, ctx)
    assert request.prompt == "cat ok"
    assert [t.extension for t in ctx.prompt_transforms] == ["b_good"]
    assert "half done" in host.extensions.records["a_half"].failures[0].error


def test_failing_on_step_is_disabled_for_the_generation_only(make_host):
    host = make_host(
        a_bad=HEADER + "CALLS = []\n@hookimpl\ndef on_step(step):\n"
        "    CALLS.append(step.step)\n    raise KeyError('x')\n",
        b_counter=HEADER + "CALLS = []\n@hookimpl\ndef on_step(ctx, step):\n    CALLS.append(step.step)\n",
    )
    bad = host.extensions.records["a_bad"].module
    good = host.extensions.records["b_counter"].module
    for _ in range(2):  # two generations
        _, ctx = new_ctx()
        for i in range(3):
            host.generation_hooks.on_step(ctx, StepState(step=i, total_steps=3, timestep=0.0))
    assert bad.CALLS == [0, 0]  # once per generation, then skipped
    assert good.CALLS == [0, 1, 2, 0, 1, 2]
    assert "a_bad" in ctx.warnings[0]


def test_denoiser_kwargs_are_merged_by_adding_tensors():
    a = {"mid": torch.ones(2), "down": [torch.ones(1), torch.zeros(1)], "only_a": 1}
    b = {"mid": torch.ones(2), "down": [torch.ones(1), torch.ones(1)]}
    merged = merge_denoiser_kwargs(merge_denoiser_kwargs({}, a), b)
    assert torch.equal(merged["mid"], torch.full((2,), 2.0))
    assert [t.item() for t in merged["down"]] == [2.0, 1.0]
    assert merged["only_a"] == 1


def test_denoiser_kwargs_and_after_sample_chain_through_hosts(make_host):
    host = make_host(
        a=HEADER
        + "import torch\n@hookimpl\ndef denoiser_kwargs(step):\n    return {'r': torch.tensor(1.0)}\n"
        "@hookimpl\ndef after_sample(images):\n    return [i + '-a' for i in images]\n",
        b=HEADER
        + "import torch\n@hookimpl\ndef denoiser_kwargs(step):\n    return {'r': torch.tensor(2.0)}\n"
        "@hookimpl\ndef after_sample(images):\n    return []\n",
        c=HEADER + "@hookimpl\ndef after_sample(images):\n    return None\n",
    )
    _, ctx = new_ctx()
    kwargs = host.generation_hooks.denoiser_kwargs(ctx, StepState(step=0, total_steps=1, timestep=1.0))
    assert kwargs["r"].item() == 3.0
    assert host.generation_hooks.after_sample(ctx, ["img"]) == ["img-a"]
    assert any("'b'" in w for w in ctx.warnings)  # an empty result is refused, named


def test_ui_tabs_accept_pairs_and_tab_objects_and_drop_garbage(make_host):
    host = make_host(
        a=HEADER
        + "@hookimpl\ndef ui_tabs():\n    return [('First', lambda: None), Tab('Second', lambda: None)]\n",
        b=HEADER + "@hookimpl\ndef ui_tabs():\n    return ['not a tab']\n",
        c=HEADER + "@hookimpl\ndef ui_tabs():\n    raise RuntimeError('no tabs today')\n",
    )
    tabs = host.ui_tabs()
    assert [(ext, tab.title) for ext, tab in tabs] == [("a", "First"), ("a", "Second")]
    assert all(isinstance(tab, Tab) for _, tab in tabs)
    assert host.extensions.records["c"].failures[0].hook == "ui_tabs"


def test_lifecycle_hooks_and_trace_logging(make_host, caplog, monkeypatch):
    monkeypatch.setenv("EASEL_TRACE_HOOKS", "1")
    with caplog.at_level(logging.INFO, logger="easel.hooks"):
        host = make_host(
            a=HEADER
            + "SEEN = []\n@hookimpl\ndef startup(host):\n    SEEN.append(('startup', host.started))\n"
            "@hookimpl\ndef shutdown(host):\n    SEEN.append('shutdown')\n"
            "@hookimpl\ndef register_api_routes(router):\n    router.append('/a/route')\n"
            "@hookimpl\ndef model_loaded(ctx, model):\n    SEEN.append(('model', model))\n"
            "@hookimpl\ndef before_sample(ctx):\n    SEEN.append('before')\n"
            "@hookimpl\ndef image_saved(ctx, path):\n    SEEN.append(path)\n",
        )
    assert "hook startup -> a" in caplog.text
    routes = []
    host.register_api_routes(routes)
    _, ctx = new_ctx()
    host.generation_hooks.model_loaded(ctx, "m")
    host.generation_hooks.before_sample(ctx)
    host.generation_hooks.image_saved(ctx, "/x.png")
    host.stop()
    assert routes == ["/a/route"]
    assert host.extensions.records["a"].module.SEEN == [
        ("startup", False),
        ("model", "m"),
        "before",
        "/x.png",
        "shutdown",
    ]
