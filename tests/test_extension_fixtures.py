"""Three extensions an A1111 author would port (tests/fixture_extensions/), loaded by the
production loader from an extensions folder, through the engine and the CLI:

- wildcards: one prompt per image, chosen from the image's seed (A1111's all_prompts);
- step_stats: per-step statistics as a structured result (ctx.results);
- blocklist: a user setting read from ctx.settings, refusing in transform_prompt.

The same three through the native API and /sdapi/v1: tests/api/test_extension_fixtures_api.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.cli.main import main as cli_main
from core.config import BUNDLED_EXTENSION_NAMES
from core.engine import Engine
from core.saving import parse_infotext, read_infotext
from plugin_api import GenerationRequest, InvalidRequest

FIXTURES = Path(__file__).parent / "fixture_extensions"
COLORS = (FIXTURES / "wildcards" / "wildcards" / "color.txt").read_text().split()


def fixture_module(name: str):
    """The wildcards module as the loader imports it (its ``expand`` is the reference)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"fixture_{name}", FIXTURES / name / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fixture_engine(make_host):
    host = make_host(
        extension_dirs=[FIXTURES], safe_mode=False, disabled_extensions=set(BUNDLED_EXTENSION_NAMES)
    )
    assert {"wildcards", "step_stats", "blocklist"} <= {r.name for r in host.extensions.loaded()}
    return Engine(host)


def request(prompt: str, **fields) -> GenerationRequest:
    fields = {"seed": 40, "steps": 2, "width": 64, "height": 64, "model": "tiny-sd15", **fields}
    return GenerationRequest(prompt=prompt, **fields)


@pytest.fixture(scope="module")
def wildcard_run(fixture_engine):
    """2 batches of 2 images: four seeds, four prompts of their own."""
    return fixture_engine.generate(request("a __color__ __shape__", batch_size=2, batch_count=2))


def test_wildcards_choose_per_image_from_the_seed(wildcard_run):
    wildcards = fixture_module("wildcards")
    result = wildcard_run
    assert result.seeds == [40, 41, 42, 43]
    assert result.prompts == [wildcards.expand("a __color__ __shape__", seed) for seed in result.seeds]
    assert len(set(result.prompts)) > 1, "the seeds 40-43 happen to pick different words"
    for path, seed, prompt in zip(result.paths, result.seeds, result.prompts, strict=True):
        params = parse_infotext(read_infotext(path))
        assert params["Prompt"] == "a __color__ __shape__"  # as written: pasting it re-runs the wildcards
        assert params["Transformed prompt"] == prompt  # what this image's encoder saw
        assert params["Seed"] == str(seed)
        assert params["Wildcard prompt"] == "a __color__ __shape__"


def test_each_image_is_made_from_its_own_prompt(fixture_engine, wildcard_run):
    """The reference: the same prompt and seed generated alone, without wildcards. Batched
    and single runs of the same rows agree to float rounding on the CPU."""
    for index in (1, 2):  # one from each batch
        alone = fixture_engine.generate(
            request(wildcard_run.prompts[index], seed=wildcard_run.seeds[index], save_images=False)
        )
        got = np.asarray(wildcard_run.images[index], dtype=np.int16)
        want = np.asarray(alone.images[0], dtype=np.int16)
        assert np.abs(got - want).max() <= 2, f"image {index} is not its own prompt's image"
        other = fixture_engine.generate(
            request("a __color__ __shape__".replace("__color__ __shape__", "grey hexagon"),
                    seed=wildcard_run.seeds[index], save_images=False)
        )  # fmt: skip
        assert np.abs(got - np.asarray(other.images[0], dtype=np.int16)).max() > 2, "prompt had no effect"


def test_same_seed_same_choices(fixture_engine, wildcard_run):
    again = fixture_engine.generate(
        request("a __color__ __shape__", batch_size=2, batch_count=2, save_images=False)
    )
    assert again.prompts == wildcard_run.prompts


def test_step_stats_is_a_structured_result_in_every_infotext(wildcard_run):
    stats = wildcard_run.results["step_stats"]
    assert [len(batch) for batch in stats["batches"]] == [2, 2]  # on_step: every step of each batch
    assert all(entry["sigma"] is None or entry["sigma"] > 0 for batch in stats["batches"] for entry in batch)
    for path, batches in zip(wildcard_run.paths, (1, 1, 2, 2), strict=True):
        recorded = json.loads(parse_infotext(read_infotext(path))["step_stats"])
        assert len(recorded["batches"]) == batches  # what after_sample had put there when it was saved


def test_blocklist_reads_the_setting_and_refuses_in_transform_prompt(fixture_engine):
    host = fixture_engine.host
    host.set_setting("blocklist.words", "purple, dog")
    try:
        with pytest.raises(InvalidRequest) as refused:
            fixture_engine.generate(request("a dog"))
        assert refused.value.field == "prompt" and "dog" in refused.value.message
        # seeds 0..5: one image (not the first) draws "purple" from the wildcard: it is named
        wildcards = fixture_module("wildcards")
        seeds = range(0, 6)
        purple = [i for i, s in enumerate(seeds) if "purple" in wildcards.expand("__color__", s)]
        assert purple, "pick seeds so that one image draws purple"
        with pytest.raises(InvalidRequest) as refused:
            fixture_engine.generate(request("a __color__ cat", seed=0, batch_size=6))
        assert refused.value.field == f"prompts.{purple[0]}"
    finally:
        host.set_setting("blocklist.words", "")


@pytest.mark.slow
def test_the_three_through_the_cli(tmp_path, models_dir, capsys):
    common = [
        "--models-dir", str(models_dir), "--data-dir", str(tmp_path / "data"), "--extensions-dir", str(FIXTURES),
        "--model", "tiny-sd15", "--steps", "2", "--width", "64", "--height", "64", "--local",
    ]  # fmt: skip
    code = cli_main(["generate", "a __color__ square", "--seed", "7", "--batch", "2", *common])
    out = capsys.readouterr()
    assert code == 0, out.err
    paths = out.out.split()
    wildcards = fixture_module("wildcards")
    for path, seed in zip(paths, (7, 8), strict=True):
        params = parse_infotext(read_infotext(path))
        assert params["Transformed prompt"] == wildcards.expand("a __color__ square", seed)
        assert json.loads(params["step_stats"])["steps"] == 2
    # the blocklist's setting, as the Settings tab saves it (same data folder)
    from core.config import Settings
    from core.host import Host

    host = Host(
        Settings(
            data_dir=tmp_path / "data", models_dir=models_dir, extension_dirs=[FIXTURES], safe_mode=False
        )
    ).start()
    host.set_setting("blocklist.words", "square")
    host.stop()
    code = cli_main(["generate", "a __color__ square", *common])
    err = capsys.readouterr().err
    assert code == 2
    assert "prompt: contains the blocked word 'square'" in err
