"""Tests for the shipped demo model and its tooling (tools/demo_model)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # self-contained: works without pytest's pythonpath setting
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tools.demo_model import scenes  # noqa: E402
from tools.demo_model.judge import judge  # noqa: E402

MODEL_DIR = ROOT / "models" / "Stable-diffusion" / "easel-demo"


def test_judge_is_correct_on_rendered_scenes():
    rng = np.random.default_rng(2024)
    n, hits = 200, dict.fromkeys(("color", "background", "shape", "position"), 0)
    for _ in range(n):
        scene = scenes.sample_scene(rng, "any", p_two=0.0)
        s = scene.shapes[0]
        j = judge(scenes.render(scene, 128))
        hits["color"] += j.color == s.color
        hits["background"] += j.background == scene.background
        hits["shape"] += j.shape == s.kind
        hits["position"] += j.position == s.position
    for key, value in hits.items():
        assert value / n >= 0.95, (key, value / n)


def test_judge_on_held_out_ground_truth_and_path(tmp_path):
    for p, scene in zip(scenes.held_out_prompts(), scenes.held_out_scenes(), strict=False):
        j = judge(scenes.render(scene))
        assert (j.color, j.background, j.shape, j.position) == (
            p["color"],
            p["background"],
            p["shape"],
            p["position"],
        )
    path = tmp_path / "x.png"
    scenes.render(scenes.held_out_scenes()[0]).save(path)
    assert judge(path).shape == scenes.held_out_scenes()[0].shapes[0].kind


def test_generator_is_deterministic():
    def draw(seed):
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(20):
            sc = scenes.sample_scene(rng)
            out.append((sc, scenes.caption(sc, rng), scenes.render(sc, 64).tobytes()))
        return out

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)
    assert scenes.training_pairs(50, 3) == scenes.training_pairs(50, 3)
    assert scenes.held_out_prompts() == scenes.held_out_prompts()


def test_scene_vocabulary_and_constraints():
    rng = np.random.default_rng(1)
    for _ in range(500):
        sc = scenes.sample_scene(rng)
        assert sc.background in scenes.COLOR_NAMES
        for s in sc.shapes:
            assert s.color != sc.background
            assert s.kind in scenes.SHAPES and s.position in scenes.POSITIONS and s.size in scenes.SIZES
    assert scenes.render(sc).size == (128, 128)


def test_held_out_combos_never_in_training():
    held = scenes.HELD_OUT_COMBOS
    assert len(held) >= 20
    assert ("red", "circle", "blue") not in held
    train_scenes, caps = scenes.training_pairs(5000, 0)
    for sc in train_scenes:
        for s in sc.shapes:
            assert (s.color, s.kind, sc.background) not in held
    prompts = scenes.held_out_prompts()
    assert len(prompts) == 48 and len({p["seed"] for p in prompts}) == 48
    assert all((p["color"], p["shape"], p["background"]) in held for p in prompts)
    train_captions = {c for cs in caps for c in cs}
    assert not train_captions & {p["prompt"] for p in prompts}


def test_phrasing_set_is_fixed_and_scored_right():
    from tools.demo_model import phrasings

    prompts = phrasings.phrasing_prompts()
    assert prompts == phrasings.phrasing_prompts()
    assert len(prompts) == 64 and len({p["seed"] for p in prompts}) == 64
    assert {p["template"] for p in prompts} == set(phrasings.HELD_OUT_TEMPLATES)
    # no two held-out templates share a skeleton (a position phrase can give one template
    # two: "at the {pos}", "in the {pos} corner")
    template_of = {}
    for p in prompts:
        assert template_of.setdefault(phrasings.skeleton(p["prompt"]), p["template"]) == p["template"]
    # the set measures phrasing: its combinations are from the training distribution, and
    # the judge reads its ground truth off the rendered scenes
    for p, scene in zip(prompts, phrasings.phrasing_scenes(), strict=True):
        assert (p["color"], p["shape"], p["background"]) not in scenes.HELD_OUT_COMBOS
        j = judge(scenes.render(scene))
        assert (j.color, j.background, j.shape) == (p["color"], p["background"], p["shape"])
        assert p["position"] in (None, j.position)
    assert sum(p["position"] is not None for p in prompts) >= 32


def test_training_paraphrases_never_write_a_held_out_phrasing():
    from tools.demo_model import phrasings

    held_out = phrasings.held_out_skeletons()
    held_out_prompts = {p["prompt"].lower() for p in phrasings.phrasing_prompts()}
    rng = np.random.default_rng(0)
    train_scenes, _ = scenes.training_pairs(500, 0)
    drawn = set()
    for scene in train_scenes:
        for _ in range(10):
            text, _, _ = phrasings.paraphrase(scene, rng)
            drawn.add(text)
            assert phrasings.loose_skeleton(text) not in held_out, text
            assert text.lower() not in held_out_prompts, text
    assert len({phrasings.skeleton(t) for t in drawn}) > 1000  # many phrasings, not a few
    # the guard is what keeps them apart: an unguarded generator writes held-out templates
    # too ("{color} {shape}, {color} backdrop"), so the check above is not vacuous
    unguarded = {
        phrasings.loose_skeleton(phrasings.paraphrase(scene, rng, _forbidden=frozenset())[0])
        for scene in train_scenes
        for _ in range(20)
    }
    assert unguarded & held_out
    # the guard ignores punctuation and "a"/"an": a held-out template with its full stops
    # made commas, or its article changed, is still the held-out template
    held_out_example = "green background. red circle. on the left."
    assert phrasings.loose_skeleton(held_out_example) in held_out
    assert phrasings.loose_skeleton("Green background, red circle, on the left") in held_out
    assert phrasings.loose_skeleton("picture of an red circle over an green background") in held_out
    assert phrasings.loose_skeleton("green background with a red circle on the left") not in held_out


def _model_size_mb() -> float:
    return sum(p.stat().st_size for p in MODEL_DIR.rglob("*") if p.is_file()) / 1e6


def test_model_folder_is_small_and_complete():
    assert (MODEL_DIR / "model_index.json").is_file()
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (MODEL_DIR / sub).is_dir(), sub
    assert _model_size_mb() <= 25.0
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(MODEL_DIR / "tokenizer"))
    assert len(tok) == 49408


def test_export_writes_the_shipped_easel_json(tmp_path):
    """A re-export keeps the native size (#25) and the recommended settings."""
    import json

    from tools.demo_model.export import write_recommended

    write_recommended(tmp_path)
    shipped = json.loads((MODEL_DIR / "easel.json").read_text())
    assert json.loads((tmp_path / "easel.json").read_text()) == shipped


@pytest.fixture(scope="module")
def pipe():
    import torch

    from tools.demo_model.evaluate import load_pipeline

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    return load_pipeline(MODEL_DIR)


def test_readme_command_draws_a_red_circle_on_blue(tmp_path, capsys, monkeypatch):
    """`easel generate "a red circle on a blue background" --seed 1`: the real CLI, the
    default model and its recommended settings (easel.json), judged on the written PNG."""
    from core.cli.main import main as cli_main

    monkeypatch.delenv("EASEL_MODELS_DIR", raising=False)
    args = ["generate", "a red circle on a blue background", "--seed", "1"]
    code = cli_main([*args, "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, err
    [path] = out.strip().splitlines()
    j = judge(path)
    assert (j.color, j.shape, j.background) == ("red", "circle", "blue"), j


@pytest.mark.slow  # the model's quality through diffusers alone, no Easel code: ~20-50 s
def test_held_out_accuracy(pipe):
    from tools.demo_model.evaluate import evaluate, recommended_batch_fn

    # the folder's recommended settings (easel.json), what `easel generate` uses
    res = evaluate(generate_batch_fn=recommended_batch_fn(pipe, MODEL_DIR))
    # measured (1 thread, the #29 encoder): 1.000 / 1.000 / 0.917 / 1.000; before #29
    # 1.000 / 1.000 / 0.875 / 1.000: the free-phrasing training must not cost these (one
    # prompt of slack for other thread counts)
    assert res["color"] >= 47 / 48, res
    assert res["background"] >= 47 / 48, res
    assert res["shape"] >= 42 / 48, res
    assert res["position"] >= 47 / 48, res


@pytest.mark.slow  # 64 images through diffusers alone: 139 s on the loaded 2-core CPU
def test_phrasing_accuracy(pipe):
    """The 64 held-out phrasings (tools/demo_model/phrasings.py, #29), scored apart from the
    held-out combinations: prompts written in ways the training captions never were."""
    from tools.demo_model.evaluate import evaluate, recommended_batch_fn
    from tools.demo_model.phrasings import phrasing_prompts

    res = evaluate(generate_batch_fn=recommended_batch_fn(pipe, MODEL_DIR), prompts=phrasing_prompts())
    res.pop("rows")
    assert res["n"] == 64 and res["n_position"] == 32, res
    # measured (1 thread, the step-3000 encoder): 0.984 / 1.000 / 0.859 / 1.000, against
    # 0.734 / 0.703 / 0.656 / 0.469 for the encoder before #29; the bounds are #29's targets
    # (2-3 prompts below the measured figures, for other thread counts' float rounding)
    assert res["color"] >= 0.95, res
    assert res["background"] >= 0.95, res
    assert res["shape"] >= 0.80, res
    assert res["position"] >= 0.90, res
