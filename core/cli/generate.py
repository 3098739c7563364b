"""``easel generate "PROMPT"``: images from a prompt; prints the written paths, one per line.

Progress goes to stderr (a tqdm bar); bad input is a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("generate", help="generate images from a prompt", parents=[common])
    parser.add_argument("prompt")
    parser.add_argument("--model", help="model name as listed by `easel models` (default: the demo model)")
    parser.add_argument("--negative", default="", help="negative prompt")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--cfg", type=float, help="CFG scale")
    parser.add_argument(
        "--late-cfg", type=float, help="CFG scale for the late steps (default: the model's recommendation)"
    )
    parser.add_argument(
        "--late-cfg-start", type=float, help="where the late CFG starts, a fraction of the steps (0.5)"
    )
    parser.add_argument("--seed", type=int, default=-1, help="-1 = random")
    parser.add_argument("--width", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--sampler", help='e.g. "Euler a", "DPM++ 2M"')
    parser.add_argument(
        "--scheduler",
        help="schedule type: Automatic (default), Karras, Exponential, Uniform, SGM Uniform, Beta... (A1111's)",
    )
    parser.add_argument("--shift", type=float, help="flow-matching models (Z-Image): sigma shift")
    parser.add_argument(
        "--style", action="append", default=[], help="a style from styles.csv in the data folder; repeatable"
    )
    parser.add_argument("--batch", type=int, default=1, help="images per run (batch size)")
    parser.add_argument("--count", type=int, default=1, help="runs, one after another (batch count)")
    parser.add_argument("--clip-skip", type=int, default=1)
    hires = parser.add_argument_group("hires fix (A1111's: sample, upscale, then an img2img pass)")
    hires.add_argument("--hires-scale", type=float, help="turns hires fix on: upscale by this (1-4)")
    hires.add_argument(
        "--hires-upscaler",
        help='"Latent" (default), "Latent (nearest)"... or an upscaler (GET /sdapi/v1/upscalers)',
    )
    hires.add_argument("--hires-steps", type=int, default=0, help="steps of the second pass (0: --steps)")
    hires.add_argument(
        "--hires-denoise", type=float, default=0.7, help="denoising strength of the second pass"
    )
    parser.add_argument("--format", default="png", choices=("png", "jpeg", "webp"))
    parser.add_argument("--out", type=Path, help="outputs folder (default: <data dir>/outputs)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from core.cli.main import settings_from_args
    from core.engine import Engine
    from core.errors import EaselError, RequestError
    from core.host import Host
    from plugin_api.types import GenerationRequest

    settings = settings_from_args(args)
    _quiet_loading_bars()
    request = GenerationRequest(
        prompt=args.prompt,
        negative_prompt=args.negative,
        seed=args.seed,
        steps=args.steps,
        cfg_scale=args.cfg,
        late_cfg_scale=args.late_cfg,
        late_cfg_start=args.late_cfg_start,
        width=args.width,
        height=args.height,
        sampler=args.sampler,
        scheduler=args.scheduler,
        shift=args.shift,
        styles=list(args.style),
        model=args.model,
        batch_size=args.batch,
        batch_count=args.count,
        clip_skip=args.clip_skip,
        output_format=args.format,
    )
    if args.hires_scale is None and (args.hires_upscaler or args.hires_steps):
        print("easel generate: --hires-upscaler / --hires-steps need --hires-scale", file=sys.stderr)
        return 2
    if args.hires_scale is not None:
        request.enable_hr = True
        request.hr_scale = args.hires_scale
        request.hr_upscaler = args.hires_upscaler
        request.hr_second_pass_steps = args.hires_steps
        request.denoising_strength = args.hires_denoise
    host = Host(settings).start()
    engine = Engine(host, outputs_dir=args.out.resolve() if args.out else None)
    bar = None

    def on_progress(event) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=event.total_steps * event.batch_count, file=sys.stderr, unit="step")
        bar.n = event.batch_index * event.total_steps + event.step
        bar.refresh()

    try:
        result = engine.generate(request, on_progress=on_progress)
    except RequestError as exc:
        print(f"easel generate: {exc}", file=sys.stderr)
        return 2
    except EaselError as exc:
        print(f"easel generate: {exc}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
        host.stop()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for path in result.paths:
        print(path)
    return 0


def _quiet_loading_bars() -> None:
    """Keep stderr to Easel's own progress bar (diffusers/transformers draw their own
    bars while loading components)."""
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
