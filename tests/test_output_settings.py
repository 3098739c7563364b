"""The saving settings (A1111's names): image format, folders, file name patterns; each
shows in the next generation, and folders or patterns that would lead out of the outputs
folder are refused naming the setting (issue #25)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from core.saving.filenames import NameFields, apply_pattern, check_pattern
from core.saving.output_settings import OutputOptions
from core.saving.writer import read_infotext, save_image


def test_pattern_tags_as_a1111_names_them():
    fields = NameFields(
        seed=42, prompt="a red circle, on/a: blue background!", negative_prompt="blurry", seeds=[42, 43],
        steps=20, cfg_scale=4.0, width=128, height=96, sampler="Euler", model_name="easel-demo",
        model_hash="abc123", clip_skip=2, batch_number=1, generation_number=3,
        now=dt.datetime(2026, 1, 31, 12, 34, 56),
    )  # fmt: skip

    def sha(text: str) -> str:  # A1111's prompt hashes: sha256, 8 digits
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    cases = {
        "[seed]": "42",
        "[seed_last]": "43",
        "[steps]-[cfg]-[width]x[height]": "20-4.0-128x96",  # A1111 writes str(cfg_scale)
        "[sampler]-[model_name]-[model_hash]": "Euler-easel-demo-abc123",
        # words split at spaces and punctuation, joined with spaces (A1111's re_nonletters)
        "[prompt_words]": "a red circle on a blue background",
        # [prompt] replaces spaces; characters Windows refuses become "_" (so does "/")
        "[prompt]": "a_red_circle,_on_a__blue_background!",
        "[prompt_spaces]": "a red circle, on_a_ blue background!",
        "[prompt_hash]-[negative_prompt_hash]": f"{sha(fields.prompt)}-{sha('blurry')}",
        "[full_prompt_hash]": sha(f"{fields.prompt} blurry"),
        "[date]": "2026-01-31",
        "[datetime]": "20260131123456",
        "[DATETIME<%Y/%m/%d>]": "2026_01_31",  # tags are case-insensitive; "/" sanitised
        "[batch_number]-[generation_number]-[clip_skip]": "1-3-2",
        "[unknown_tag]-[seed]": "[unknown_tag]-42",  # A1111 leaves unknown tags as written
    }
    for pattern, expected in cases.items():
        assert apply_pattern(pattern, fields) == expected, pattern
    long_prompt = NameFields(seed=1, prompt="one two three four five six seven eight nine ten")
    assert apply_pattern("[prompt_words]", long_prompt) == "one two three four five six seven eight"
    assert apply_pattern("[prompt_words]", NameFields(seed=1, prompt="")) == "empty"


@pytest.mark.parametrize(
    ("value", "folders", "reason"),
    [
        ("[seed]/../x", False, "names a file"),
        ("a\\b", False, "names a file"),
        ("../outside", True, "'..'"),
        ("a/../../b", True, "'..'"),
        ("/etc", True, "relative"),
        ("C:\\Windows", True, "relative"),
        ("~/x", True, "relative"),
        ("sub/NUL", True, "device"),
        ("con.txt", True, "device"),
        ("COM1", False, "device"),
        ("a\x00b", True, "control"),
        ("x" * 300, True, "longer"),
    ],
)
def test_patterns_that_could_lead_out_are_refused_naming_the_setting(value, folders, reason):
    with pytest.raises(ValueError, match=reason) as caught:
        check_pattern(value, "setting 'samples_filename_pattern'", folders=folders)
    assert "samples_filename_pattern" in str(caught.value)


def test_folders_and_names_from_the_settings(tmp_path):
    image, info = Image.new("RGB", (16, 16), "red"), "a prompt\nSteps: 2, Sampler: Euler, Seed: 5"
    fields = NameFields(seed=5, prompt="a red square", now=dt.datetime(2026, 1, 31))
    options = OutputOptions(outdir_txt2img="mine/t2i", directories_pattern="[date]/[prompt_words]",
                            filename_pattern="[seed]-[prompt_words]")  # fmt: skip
    first = save_image(image, tmp_path, "txt2img", 5, info, "png", options=options, fields=fields)
    second = save_image(image, tmp_path, "txt2img", 5, info, "png", options=options, fields=fields)
    folder = tmp_path / "mine" / "t2i" / "2026-01-31" / "a red square"
    assert (first, second) == (folder / "00000-5-a red square.png", folder / "00001-5-a red square.png")
    img2img = save_image(image, tmp_path, "img2img", 5, info, "png", options=options, fields=fields)
    assert img2img.parent.parent.parent == tmp_path / "img2img-images"
    # one folder for everything; no number: a name taken gets -1, -2 (never overwritten)
    flat = OutputOptions(
        outdir_samples="all", save_to_dirs=False, add_number=False, filename_pattern="[seed]"
    )
    names = [
        save_image(image, tmp_path, m, 5, info, "png", options=flat, fields=fields).name
        for m in ("txt2img", "img2img")
    ]
    assert names == ["5.png", "5-1.png"] and (tmp_path / "all" / "5.png").is_file()
    # a prompt cannot add folders or name a device through the tags
    tricky = NameFields(seed=1, prompt="../../etc con", now=dt.datetime(2026, 1, 31))
    tagged = OutputOptions(directories_pattern="[prompt_spaces]", filename_pattern="[prompt]")
    path = save_image(image, tmp_path, "txt2img", 1, info, "png", options=tagged, fields=tricky)
    assert path.is_relative_to(tmp_path / "txt2img-images") and path.name == "00000-.._.._etc_con.png"


def test_a_symlink_planted_after_the_setting_is_refused_when_writing(tmp_path):
    outputs, elsewhere = tmp_path / "outputs", tmp_path / "elsewhere"
    outputs.mkdir()
    elsewhere.mkdir()
    (outputs / "linked").symlink_to(elsewhere, target_is_directory=True)
    options = OutputOptions(outdir_txt2img="linked", save_to_dirs=False)
    with pytest.raises(ValueError, match="outdir_txt2img_samples"):
        save_image(Image.new("RGB", (8, 8)), outputs, "txt2img", 1, "x", "png", options=options)
    assert not any(elsewhere.iterdir())


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_jpeg_and_webp_quality_and_infotext(tmp_path, fmt):
    """A1111 writes the parameters into EXIF UserComment as b"UNICODE\\0" + UTF-16 big-endian
    (piexif.helper.UserComment.dump(..., encoding="unicode")); quality follows jpeg_quality."""
    import numpy as np

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    info = "一只猫, a cat\nNegative prompt: blurry\nSteps: 2, Seed: 5"
    sizes = {}
    for quality in (20, 95):
        path = save_image(
            image,
            tmp_path / str(quality),
            "txt2img",
            5,
            info,
            fmt,
            options=OutputOptions(jpeg_quality=quality),
        )
        sizes[quality] = path.stat().st_size
        assert read_infotext(path) == info
        with Image.open(path) as saved:
            raw = saved.getexif().get_ifd(0x8769)[0x9286]
        assert raw == b"UNICODE\x00" + info.encode("utf-16-be")
    assert sizes[20] < sizes[95]
    if fmt == "webp":
        lossless = save_image(
            image, tmp_path / "l", "txt2img", 5, info, fmt, options=OutputOptions(webp_lossless=True)
        )
        with Image.open(lossless) as saved:
            assert np.array_equal(np.asarray(saved.convert("RGB")), np.asarray(image))


def test_every_format_gets_the_mode_the_umask_gives(tmp_path):
    """Outputs are ordinary files in every format: 0666 less the umask (issue #25: PNGs
    were 0600). A fresh process per umask: the writer reads it once."""
    script = (
        "import os, sys; os.umask(int(sys.argv[2], 8)); from PIL import Image;"
        "from core.saving import save_image;"
        "print(*[oct(os.stat(save_image(Image.new('RGB', (8, 8)), sys.argv[1], 'txt2img', 1, 'x', f)).st_mode & 0o777)"
        " for f in ('png', 'jpeg', 'webp')])"
    )
    for umask in (0o022, 0o077):
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / oct(umask)), oct(umask)],
            capture_output=True, text=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
        assert done.stdout.split() == [oct(0o666 & ~umask)] * 3


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory, tiny_sd15_dir):
    """A host with only the tiny SD1.5 model (native size 64) and its own data folder."""
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    models = tmp_path_factory.mktemp("models")
    (models / "Stable-diffusion").mkdir()
    (models / "Stable-diffusion" / "tiny-sd15").symlink_to(tiny_sd15_dir, target_is_directory=True)
    host = Host(
        Settings(data_dir=tmp_path_factory.mktemp("data"), models_dir=models, safe_mode=True, device="cpu")
    )
    return Engine(host.start())


def small(**fields):
    from plugin_api.types import GenerationRequest

    defaults = {
        "prompt": "a red square",
        "seed": 3,
        "steps": 2,
        "width": 64,
        "height": 64,
        "model": "tiny-sd15",
    }
    return GenerationRequest(**{**defaults, **fields})


@pytest.mark.slow
def test_each_saving_setting_shows_in_the_next_generation(tiny_engine):
    import numpy as np

    host, outputs = tiny_engine.host, tiny_engine.outputs_dir
    changed = {
        "samples_format": "webp", "webp_lossless": True, "samples_filename_pattern": "[model_name]-[prompt_words]",
        "save_to_dirs": False, "outdir_txt2img_samples": "mine/t2i", "default_negative_prompt": "blurry",
        "CLIP_stop_at_last_layers": 2,
    }  # fmt: skip
    for key, value in changed.items():
        host.set_setting(key, value)
    try:
        result = tiny_engine.generate(small())
        path = outputs / "mine" / "t2i" / "00000-tiny-sd15-a red square.webp"
        assert result.paths == [str(path)]
        assert read_infotext(path) == result.infotexts[0]
        assert "Negative prompt: blurry" in result.infotexts[0] and "Clip skip: 2" in result.infotexts[0]
        with Image.open(path) as saved:  # lossless: the pixels the engine made
            assert saved.format == "WEBP" and np.array_equal(
                np.asarray(saved.convert("RGB")), np.asarray(result.images[0])
            )
        # a request's own values win over the settings, and give the same image as the
        # settings did when they ask for the same
        explicit = tiny_engine.generate(small(output_format="png", negative_prompt="blurry", clip_skip=2))
        assert explicit.paths[0].endswith("00001-tiny-sd15-a red square.png")
        assert np.array_equal(np.asarray(explicit.images[0]), np.asarray(result.images[0]))
        plain = tiny_engine.generate(small(negative_prompt="", clip_skip=1))
        assert "Negative prompt" not in plain.infotexts[0] and "Clip skip" not in plain.infotexts[0]
        assert not np.array_equal(np.asarray(plain.images[0]), np.asarray(result.images[0]))
    finally:
        for key in changed:
            host.set_setting(key, host.setting_specs.get(key).default)
    again = tiny_engine.generate(small())
    assert again.paths[0].endswith(".png") and "/txt2img-images/" in again.paths[0]


def test_output_settings_are_refused_naming_the_setting(tiny_engine):
    host = tiny_engine.host
    for key, value in [
        ("outdir_txt2img_samples", "../elsewhere"), ("outdir_samples", "/tmp"), ("outdir_img2img_samples", "NUL"),
        ("samples_filename_pattern", "[seed]/x"), ("directories_filename_pattern", "../[date]"),
        ("samples_format", "gif"), ("jpeg_quality", 0), ("CLIP_stop_at_last_layers", 13),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=key):
            host.set_setting(key, value)
        assert host.get_setting(key) == host.setting_specs.get(key).default


def test_a_size_far_above_the_model_s_own_is_warned(tiny_engine):
    checked = tiny_engine.validate(small(width=256, height=256))
    assert checked.width == 256
    from core.validation import validate_request

    warned = validate_request(small(width=256, height=256), tiny_engine.models, tiny_engine.host.samplers)
    assert any("far above this model's native size (64x64)" in w for w in warned.warnings)
    fine = validate_request(small(width=128, height=128), tiny_engine.models, tiny_engine.host.samplers)
    assert not [w for w in fine.warnings if "far above" in w]


def test_size_presets_follow_the_model(tmp_path):
    from types import SimpleNamespace

    from core.config import SHIPPED_MODELS_DIR
    from core.errors import ModelError
    from core.models.sizes import presets_for, read_sizes

    demo = SimpleNamespace(
        sizes=read_sizes(SHIPPED_MODELS_DIR / "Stable-diffusion" / "easel-demo"), native_size=128
    )
    assert presets_for(demo, 512) == [(128, 128)]  # the demo model's easel.json: its one training size
    sdxl = presets_for(SimpleNamespace(sizes=[], native_size=None), 1024)
    assert sdxl[0] == (1024, 1024) and (896, 1152) in sdxl and (1152, 896) in sdxl  # SDXL's buckets
    assert all(w % 64 == 0 and h % 64 == 0 for w, h in sdxl)
    for bad in ([[128]], [[128, "x"]], [[16, 16]], "128x128", [[True, 128]]):
        (tmp_path / "easel.json").write_text(json.dumps({"sizes": bad}))
        with pytest.raises(ModelError, match=r"easel\.json.*sizes"):
            read_sizes(tmp_path)
