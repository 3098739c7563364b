"""The bundled textual-inversion extension (extensions/embeddings) on the tiny SD1.5 and SDXL
models: real embedding files in A1111's and kohya's layouts, compared with diffusers'
``load_textual_inversion`` on the same weights and seed; A1111's ``TI hashes`` infotext
and ``/sdapi/v1/embeddings`` shape; nothing left on the model after a request."""

from __future__ import annotations

import copy
import hashlib

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.prompt_embeddings import PromptEmbeddings
from core.prompt_parser import CHUNK_TOKENS, EMBEDDING_PLACEHOLDER, tokenize_weighted
from core.saving import parse_infotext, read_infotext
from extensions.embeddings import a1111_listing
from extensions.embeddings.library import EmbeddingFileError, read_embedding
from plugin_api import GenerationRequest, PromptEmbedding

# one 8-bit level after rounding plus float summation-order noise (as test_engine_sd15)
TOLERANCE = 1.5 / 255.0
SD15_WIDTH = 32  # the tiny SD1.5 text encoder (plugin_api.testing.tiny_sd15_components)


def vectors(count: int, width: int, seed: int) -> torch.Tensor:
    # far from the token table's scale (std 0.02), so an embedding visibly changes the image
    return torch.randn(count, width, generator=torch.Generator().manual_seed(seed))


def encoder_widths(model_dir) -> tuple[int, int]:
    import json

    read = [
        json.loads((model_dir / f / "config.json").read_text())["hidden_size"]
        for f in ("text_encoder", "text_encoder_2")
    ]
    return read[0], read[1]


@pytest.fixture(scope="module")
def webui(tmp_path_factory, tiny_sd15_dir, tiny_sdxl_dir):
    """An A1111 install: webui/models (the models folder) and webui/embeddings beside it."""
    root = tmp_path_factory.mktemp("webui")
    models = root / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    (models / "Stable-diffusion" / "tiny-sd15").symlink_to(tiny_sd15_dir, target_is_directory=True)
    (models / "Stable-diffusion" / "tiny-sdxl").symlink_to(tiny_sdxl_dir, target_is_directory=True)
    comfy = models / "embeddings"
    comfy.mkdir()
    # kohya's SD1.x safetensors layout: one tensor under "emb_params", three vectors
    save_file({"emb_params": vectors(3, SD15_WIDTH, 1)}, str(comfy / "trio_style.safetensors"))
    (comfy / "trio_style.png").write_bytes(b"\x89PNG preview")  # the card's preview beside it
    width_l, width_g = encoder_widths(tiny_sdxl_dir)
    save_file(
        {"clip_l": vectors(2, width_l, 3), "clip_g": vectors(2, width_g, 4)},
        str(comfy / "xl_look.safetensors"),
    )
    a1111 = root / "embeddings"
    a1111.mkdir()
    save_file({"emb_params": vectors(1, SD15_WIDTH, 2)}, str(a1111 / "solo.safetensors"))
    # A1111's own .pt layout: a pickle, refused without --allow-pickle
    torch.save(
        {"string_to_param": {"*": vectors(2, SD15_WIDTH, 5)}, "name": "pickled", "step": 500,
         "sd_checkpoint": "abcd1234", "sd_checkpoint_name": "tiny"},
        a1111 / "pickled.pt",
    )  # fmt: skip
    (a1111 / "broken.safetensors").write_bytes(b"not a safetensors file")
    return root


@pytest.fixture(scope="module")
def engine(make_host, webui):
    from core.engine import Engine

    host = make_host(models_dir=webui / "models")
    assert host.extensions.records["embeddings"].state == "loaded", host.extensions.records[
        "embeddings"
    ].error
    return Engine(host)


def generate(engine, prompt, model="tiny-sd15", **extra):
    values = dict(
        prompt=prompt, negative_prompt="blurry", seed=42, steps=4, cfg_scale=7.0, width=64, height=64,
        model=model, sampler="Euler", save_images=False,
    )  # fmt: skip
    values.update(extra)
    return engine.generate(GenerationRequest(**values))


def as_float(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) / 255.0


@pytest.mark.slow  # diffusers' pipeline beside Easel's
def test_embedding_matches_diffusers_load_textual_inversion(engine, webui):
    ours = generate(engine, "a red circle, trio_style")
    assert ours.warnings == []
    path = webui / "models" / "embeddings" / "trio_style.safetensors"
    components = engine.models.get("tiny-sd15").components
    expected = diffusers_sd15(components, path, "trio_style", "a red circle, trio_style")
    assert np.abs(as_float(ours.images[0]) - expected).max() <= TOLERANCE
    plain = generate(engine, "a red circle, trio_style_not")
    # the embedding matters: 8.6 levels apart here; Easel and diffusers: 0.5 (rounding)
    assert np.abs(as_float(plain.images[0]) - expected).max() > 4 * TOLERANCE


def diffusers_sd15(components, embedding_path, token, prompt) -> np.ndarray:
    """diffusers' pipeline with ``load_textual_inversion`` on copies of the text encoder and
    tokenizer (it adds tokens and rows: never on the engine's shared model)."""
    import diffusers

    pipe = diffusers.StableDiffusionPipeline(
        vae=components["vae"],
        text_encoder=copy.deepcopy(components["text_encoder"]),
        tokenizer=copy.deepcopy(components["tokenizer"]),
        unet=components["unet"],
        scheduler=diffusers.EulerDiscreteScheduler.from_config(components["scheduler"].config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.load_textual_inversion(str(embedding_path), token=token)
    return pipe(
        prompt, negative_prompt="blurry", num_inference_steps=4, guidance_scale=7.0,
        height=64, width=64, generator=torch.Generator("cpu").manual_seed(42), output_type="np",
    ).images[0]  # fmt: skip


@pytest.mark.slow  # diffusers' pipeline beside Easel's
def test_sdxl_embedding_matches_diffusers_on_both_encoders(engine, webui):
    import diffusers
    from safetensors.torch import load_file

    ours = generate(engine, "a red circle, xl_look", model="tiny-sdxl", cfg_scale=6.0)
    assert ours.warnings == []
    components = dict(engine.models.get("tiny-sdxl").components)
    for key in ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"):
        components[key] = copy.deepcopy(components[key])
    components["scheduler"] = diffusers.EulerDiscreteScheduler.from_config(components["scheduler"].config)
    pipe = diffusers.StableDiffusionXLPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    state = load_file(str(webui / "models" / "embeddings" / "xl_look.safetensors"))
    pipe.load_textual_inversion(
        state["clip_l"], token="xl_look", text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer
    )
    pipe.load_textual_inversion(
        state["clip_g"], token="xl_look", text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2
    )
    expected = pipe(
        "a red circle, xl_look", negative_prompt="blurry", num_inference_steps=4, guidance_scale=6.0,
        height=64, width=64, generator=torch.Generator("cpu").manual_seed(42), output_type="np",
    ).images[0]  # fmt: skip
    assert np.abs(as_float(ours.images[0]) - expected).max() <= TOLERANCE  # measured: 0.5 levels
    assert "TI hashes" in ours.infotexts[0]
    plain = generate(engine, "a red circle, xl_look_not", model="tiny-sdxl", cfg_scale=6.0)
    assert np.abs(as_float(plain.images[0]) - expected).max() > 4 * TOLERANCE  # measured: 13.9 levels


def test_infotext_records_ti_hashes_and_png_info_remakes_the_image(engine, webui):
    result = generate(engine, "trio_style, a red circle", negative_prompt="solo", save_images=True)
    params = parse_infotext(read_infotext(result.paths[0]))  # PNG Info: the written file
    digest = {
        name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for name, path in [
            ("trio_style", webui / "models" / "embeddings" / "trio_style.safetensors"),
            ("solo", webui / "embeddings" / "solo.safetensors"),
        ]
    }
    # A1111: "name: sha256[:12]" for every embedding either prompt used, in order of use
    assert params["TI hashes"] == f"trio_style: {digest['trio_style']}, solo: {digest['solo']}"
    assert params["Prompt"] == "trio_style, a red circle" and params["Negative prompt"] == "solo"
    again = generate(
        engine, params["Prompt"], negative_prompt=params["Negative prompt"], seed=int(params["Seed"])
    )
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(result.images[0]))
    assert "TI hashes" not in parse_infotext(generate(engine, "a red circle").infotexts[0])


def test_a_request_leaves_nothing_on_the_model(engine):
    model = engine.models.get("tiny-sd15")
    table = model.components["text_encoder"].get_input_embeddings().weight.clone()
    tokens = len(model.components["tokenizer"])
    before = generate(engine, "a red circle")
    with_embedding = generate(engine, "a red circle, trio_style")
    after = generate(engine, "a red circle")
    assert np.array_equal(np.asarray(before.images[0]), np.asarray(after.images[0]))
    assert not np.array_equal(np.asarray(before.images[0]), np.asarray(with_embedding.images[0]))
    assert torch.equal(model.components["text_encoder"].get_input_embeddings().weight, table)
    assert len(model.components["tokenizer"]) == tokens


def test_multi_vector_embedding_takes_its_vectors_and_never_straddles_a_chunk(engine):
    tokenizer = engine.models.get("tiny-sd15").components["tokenizer"]
    trio = PromptEmbedding("trio_style", {"text_encoder": vectors(3, SD15_WIDTH, 1)})
    lookup = PromptEmbeddings({"trio_style": trio}).lookup(tokenizer, "text_encoder", SD15_WIDTH)
    (chunk,) = tokenize_weighted(tokenizer, "a (trio_style:1.2) cat", embeddings=lookup)
    plain = tokenize_weighted(tokenizer, "a cat")[0]
    # BOS, "a", three vectors (weighted), "cat", EOS
    assert chunk.tokens[:6] == [
        plain.tokens[0],
        plain.tokens[1],
        *[EMBEDDING_PLACEHOLDER] * 3,
        plain.tokens[2],
    ]
    assert chunk.weights[2:5] == [1.2] * 3 and [at for at, _ in chunk.fixes] == [1]
    # 74 words, then the embedding: it does not fit after them, so it opens the next chunk
    chunks = tokenize_weighted(tokenizer, "cat " * (CHUNK_TOKENS - 1) + "trio_style", embeddings=lookup)
    assert len(chunks) == 2 and chunks[0].fixes == [] and [at for at, _ in chunks[1].fixes] == [0]


@pytest.fixture(scope="module")
def api(engine):
    """The real app (routes of the core and of the extensions) in process."""
    from fastapi.testclient import TestClient

    from core.api.app import create_app
    from core.jobs import JobService, SqliteJobQueue

    settings = engine.host.settings
    service = JobService.for_engine(
        engine, SqliteJobQueue(settings.state_dir / "queue.db"), settings=settings
    )
    with TestClient(create_app(engine.host, service, engine=engine), base_url="http://127.0.0.1") as client:
        yield client


def test_sdapi_listing_has_a1111s_shape_with_other_families_skipped(engine, api):
    generate(engine, "a red circle")  # the last model used is SD1.5
    listing = api.get("/sdapi/v1/embeddings").json()
    # what a real client reads from it (Kilvoctu/aiyabot core/settings.py: name and shape)
    assert sorted(name for name, e in listing["loaded"].items() if e["shape"] == SD15_WIDTH) == [
        "solo",
        "trio_style",
    ]
    assert listing == a1111_listing()
    assert set(listing) == {"loaded", "skipped"}
    assert listing["loaded"]["trio_style"] == {
        "step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": SD15_WIDTH, "vectors": 3
    }  # fmt: skip
    assert set(listing["loaded"]) == {"solo", "trio_style"}  # pickled.pt and broken.safetensors: refused
    width_l, width_g = encoder_widths(engine.models.info("tiny-sdxl").path)
    assert listing["skipped"] == {
        "xl_look": {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": width_l + width_g, "vectors": 2}
    }  # fmt: skip


def test_file_layouts_and_pickle_refusal(webui):
    pickled = webui / "embeddings" / "pickled.pt"
    with pytest.raises(EmbeddingFileError, match="--allow-pickle"):
        read_embedding(pickled, allow_pickle=False)
    loaded = read_embedding(pickled, allow_pickle=True)  # torch.load(weights_only=True)
    assert (loaded.name, loaded.count, loaded.shape, loaded.step) == ("pickled", 2, SD15_WIDTH, 500)
    assert loaded.a1111()["sd_checkpoint_name"] == "tiny"
    with pytest.raises(EmbeddingFileError, match=r"broken\.safetensors"):
        read_embedding(webui / "embeddings" / "broken.safetensors", allow_pickle=False)


def test_cards_for_the_browser(engine, api):
    listed = api.get("/api/v1/extra-networks", params={"network": "textual_inversion"}).json()
    assert listed == [c for c in engine.host.extra_network_cards() if c["network"] == "textual_inversion"]
    cards = {card["name"]: card for card in listed}
    assert set(cards) == {"solo", "trio_style", "xl_look"}
    assert cards["trio_style"]["prompt"] == "trio_style" and cards["trio_style"]["preview"].endswith(
        "trio_style.png"
    )
    # SDXL by its two vector sets; a 32-wide tiny one matches no real model's width
    assert cards["xl_look"]["family"] == "sdxl" and cards["solo"]["family"] == "unknown"
    assert cards["solo"]["preview"] is None and cards["trio_style"]["extension"] == "embeddings"


@pytest.mark.slow  # diffusers' pipeline beside Easel's
def test_a1111_pt_file_with_allow_pickle_matches_diffusers(make_host, webui):
    from core.engine import Engine

    # last in this file: like the LoRA library, the extension follows the host started last
    host = make_host(models_dir=webui / "models", allow_pickle=True)
    engine = Engine(host)
    ours = generate(engine, "a red circle, pickled")
    assert 'TI hashes: "pickled: ' in ours.infotexts[0]
    components = engine.models.get("tiny-sd15").components
    expected = diffusers_sd15(
        components, webui / "embeddings" / "pickled.pt", "pickled", "a red circle, pickled"
    )
    assert np.abs(as_float(ours.images[0]) - expected).max() <= TOLERANCE
    host.stop()
