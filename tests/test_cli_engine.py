"""`easel generate` and `easel models`, run in-process through the real argument parser."""

from __future__ import annotations

from pathlib import Path

from core.cli.main import main as cli_main
from core.saving import parse_infotext, read_infotext


def local_args(models_dir: Path, data_dir: Path) -> list[str]:
    """The tiny models, a scratch data folder, no bundled extensions, the CPU."""
    return ["--models-dir", str(models_dir), "--data-dir", str(data_dir), "--safe-mode", "--device", "cpu"]


def test_generate_prints_paths_and_progress(models_dir, tmp_path, capsys):
    code = cli_main(
        [
            "generate",
            "a yellow star",
            "--model",
            "tiny-sd15",
            "--steps",
            "2",
            "--width",
            "64",
            "--height",
            "64",
            "--seed",
            "9",
            "--batch",
            "2",
            "--sampler",
            "DPM++ 2M",
            "--scheduler",
            "sgm_uniform",
            "--late-cfg",
            "2.5",
            "--late-cfg-start",
            "0.4",
            "--out",
            str(tmp_path / "pictures"),
            *local_args(models_dir, tmp_path),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    paths = out.strip().splitlines()
    assert len(paths) == 2
    for path, seed in zip(paths, ("9", "10"), strict=True):
        assert Path(path).is_file() and Path(path).is_relative_to(tmp_path / "pictures" / "txt2img-images")
        params = parse_infotext(read_infotext(path))
        assert params["Seed"] == seed and params["Sampler"] == "DPM++ 2M"
        assert params["Schedule type"] == "SGM Uniform"  # the id, written as A1111's label
        assert (params["Late CFG scale"], params["Late CFG start"]) == ("2.5", "0.4")
    assert "step" in err  # the tqdm bar went to stderr


def test_generate_bad_input_is_one_line_and_exit_2(models_dir, tmp_path, capsys):
    code = cli_main(
        [
            "generate",
            "x",
            "--model",
            "tiny-sd15",
            "--width",
            "65",
            *local_args(models_dir, tmp_path),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "width" in err
    code = cli_main(
        ["generate", "x", "--model", "tiny-sd15", "--scheduler", "sharp", *local_args(models_dir, tmp_path)]
    )
    out, err = capsys.readouterr()
    assert code == 2 and "scheduler" in err and "Karras" in err  # refused, naming the choices


def test_models_lists_the_table(models_dir, tmp_path, capsys):
    assert cli_main(["models", "--models-dir", str(models_dir), "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    header, *rows = out.strip().splitlines()
    assert header.split() == ["NAME", "FAMILY", "FORMAT", "PRECISION", "SIZE", "HASH", "PREDICTION"]
    by_name = {row.split()[0]: row.split() for row in rows}
    assert by_name["tiny-sdxl-file"][1:3] == ["sdxl", "safetensors"]
    assert by_name["tiny-zimage"][1:3] == ["zimage", "diffusers"]
    assert by_name["tiny-zimage"][3] == "fp32"
    assert by_name["tiny-zimage"][7] == "-"  # flow matching: no epsilon/v question
    assert by_name["tiny-sdxl-file"][7] == "eps"


def test_generate_with_hires_fix(models_dir, tmp_path, capsys):
    common = local_args(models_dir, tmp_path)
    sample = ["--model", "tiny-sd15", "--steps", "2", "--width", "64", "--height", "64", "--seed", "3"]
    hires = ["--hires-scale", "1.5", "--hires-steps", "2", "--hires-upscaler", "Latent (nearest)"]
    code = cli_main(["generate", "a red circle", *sample, *hires, *common])
    out, err = capsys.readouterr()
    assert code == 0, err
    (path,) = out.strip().splitlines()
    from PIL import Image

    with Image.open(path) as image:
        assert image.size == (96, 96)  # 64 x 1.5
    params = parse_infotext(read_infotext(path))
    assert params["Hires upscale"] == "1.5" and params["Hires steps"] == "2"
    assert params["Hires upscaler"] == "Latent (nearest)" and params["Denoising strength"] == "0.7"

    code = cli_main(["generate", "x", "--model", "tiny-sd15", "--hires-steps", "4", *common])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "--hires-scale" in err
    code = cli_main(["generate", "x", "--model", "tiny-sd15", "--hires-scale", "9", *common])
    out, err = capsys.readouterr()
    assert code == 2 and "hr_scale" in err
