"""``easel generate "PROMPT"``: images from a prompt; prints the written paths, one per line.

Progress goes to stderr (a tqdm bar); bad input is a one-line error and exit code 2. When an
``easel serve`` runs on the same data folder (or ``--server URL`` names one), the job goes to
its queue and its loaded model (core/cli/generate_remote.py); ``--local`` runs in-process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.config import Settings


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("generate", help="generate images from a prompt", parents=[common])
    parser.add_argument("prompt")
    parser.add_argument("--model", help="model name as listed by `easel models` (default: the demo model)")
    parser.add_argument("--negative", help="negative prompt (default: the default_negative_prompt setting)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--cfg", type=float, help="CFG scale")
    parser.add_argument(
        "--distilled-cfg",
        type=float,
        help="Distilled CFG Scale of guidance-distilled models (FLUX.1-dev; 3.5)",
    )
    parser.add_argument(
        "--late-cfg", type=float, help="CFG scale for the late steps (default: the model's recommendation)"
    )
    parser.add_argument(
        "--late-cfg-start", type=float, help="where the late CFG starts, a fraction of the steps (0.5)"
    )
    parser.add_argument("--seed", type=int, default=-1, help="-1 = random")
    parser.add_argument("--width", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--sampler", help='e.g. "Euler a", "DPM++ 2M" (the schedule type: --scheduler)')
    parser.add_argument(
        "--scheduler",
        help="schedule type: Automatic (default), Karras, Exponential, Uniform, SGM Uniform, Beta... (A1111's)",
    )
    parser.add_argument("--shift", type=float, help="flow-matching models (Z-Image): sigma shift")
    parser.add_argument(
        "--style", action="append", default=[], help="a style from styles.csv in the data folder; repeatable"
    )
    parser.add_argument(
        "--vae",
        help='"Automatic" (a <checkpoint>.vae.safetensors beside it), "None" (its own) or a file '
        "in models/VAE (default: the sd_vae setting, Automatic)",
    )
    parser.add_argument("--batch", type=int, default=1, help="images per run (batch size)")
    parser.add_argument("--count", type=int, default=1, help="runs, one after another (batch count)")
    parser.add_argument("--clip-skip", type=int, help="default: the CLIP_stop_at_last_layers setting (1)")
    img2img = parser.add_argument_group("img2img / inpainting (A1111's img2img tab)")
    img2img.add_argument("--init-image", type=Path, help="start from this image (img2img)")
    img2img.add_argument("--mask", type=Path, help="inpaint: white = repaint (needs --init-image)")
    img2img.add_argument("--denoise", type=float, default=0.75, help="denoising strength (0-1)")
    img2img.add_argument("--mask-blur", type=int, default=4, help="mask blur in pixels, as A1111")
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
    parser.add_argument(
        "--cache",
        metavar="METHOD[:THRESHOLD]",
        help="step caching: deepcache[:N] (SD/SDXL UNets), fbcache[:tol], magcache[:tol], "
        "taylorseer[:N] (Z-Image); default off (docs/speed.md)",
    )
    parser.add_argument(
        "--format", choices=("png", "jpeg", "webp"), help="default: the samples_format setting (png)"
    )
    parser.add_argument(
        "--out", type=Path, help="outputs folder (default: <data dir>/outputs); runs in-process"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--server",
        metavar="URL",
        help="send the job to this easel serve (default: the one running on the same data folder)",
    )
    where.add_argument(
        "--local", action="store_true", help="run in this process even when a server is running"
    )
    parser.set_defaults(run=run, exit_at_once=True)


def request_fields(args: argparse.Namespace) -> dict:
    """The request as the native API's JobRequest takes it: one set of defaults either way."""
    fields = {
        "prompt": args.prompt,
        "negative_prompt": args.negative,
        "seed": args.seed,
        "steps": args.steps,
        "cfg_scale": args.cfg,
        "distilled_cfg_scale": args.distilled_cfg,
        "late_cfg_scale": args.late_cfg,
        "late_cfg_start": args.late_cfg_start,
        "width": args.width,
        "height": args.height,
        "sampler": args.sampler,
        "scheduler": args.scheduler,
        "shift": args.shift,
        "styles": list(args.style),
        "model": args.model,
        "vae": args.vae,
        "batch_size": args.batch,
        "batch_count": args.count,
        "clip_skip": args.clip_skip,
        "output_format": args.format,
    }
    if args.cache:
        method, _, threshold = args.cache.partition(":")
        try:
            fields["cache"] = {"method": method.strip(), "threshold": float(threshold) if threshold else None}
        except ValueError:
            fields["cache"] = {"method": method.strip(), "threshold": threshold}  # the API names it
    if args.init_image is not None:
        from core.api.images import file_base64

        # base64, as the native API takes them (the server decodes and checks them)
        fields |= {"init_image": file_base64(args.init_image), "denoising_strength": args.denoise}
        if args.mask is not None:
            fields |= {"mask": file_base64(args.mask), "mask_blur": args.mask_blur}
    if args.hires_scale is not None:
        fields |= {
            "enable_hr": True,
            "hr_scale": args.hires_scale,
            "hr_upscaler": args.hires_upscaler,
            "hr_second_pass_steps": args.hires_steps,
            "denoising_strength": args.hires_denoise,
        }
    return fields


def run(args: argparse.Namespace) -> int:
    from core.cli.main import settings_from_args

    if args.hires_scale is None and (args.hires_upscaler or args.hires_steps):
        print("easel generate: --hires-upscaler / --hires-steps need --hires-scale", file=sys.stderr)
        return 2
    if args.mask is not None and args.init_image is None:
        print("easel generate: --mask needs --init-image", file=sys.stderr)
        return 2
    for option, path in (("--init-image", args.init_image), ("--mask", args.mask)):
        if path is not None and not path.is_file():
            print(f"easel generate: {option} {path}: no such file", file=sys.stderr)
            return 2
    settings = settings_from_args(args)
    fields = request_fields(args)
    if not args.local and args.out is None:
        from core.cli import generate_remote, server_link

        if args.server:
            return generate_remote.generate_via_server(args.server.rstrip("/"), fields, settings.outputs_dir)
        url = server_link.announced_server(settings.state_dir)
        if url is not None:
            return generate_remote.generate_via_server(url, fields, settings.outputs_dir)
    return generate_locally(args, settings, fields)


def generate_locally(args: argparse.Namespace, settings: Settings, fields: dict) -> int:
    from core.api.images import ImageInputError, decode_base64_image
    from core.cli.progress_bar import PhaseBar
    from core.engine import Engine
    from core.errors import EaselError, RequestError
    from core.host import Host
    from plugin_api.types import GenerationRequest

    _quiet_loading_bars()
    images = {key: fields.pop(key) for key in ("init_image", "mask") if key in fields}
    request = GenerationRequest(**fields)
    try:
        for key, data in images.items():  # the API's decoder: header checked before decoding
            setattr(request, key, decode_base64_image(data, key))
    except ImageInputError as exc:
        print(f"easel generate: {exc}", file=sys.stderr)
        return 2
    host = Host(settings).start()
    engine = Engine(host, outputs_dir=args.out.resolve() if args.out else None)
    bar = PhaseBar()
    try:
        result = engine.generate(request, on_progress=bar.update_event)
    except RequestError as exc:
        print(f"easel generate: {exc}", file=sys.stderr)
        return 2
    except EaselError as exc:
        print(f"easel generate: {exc}", file=sys.stderr)
        return 1
    finally:
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
