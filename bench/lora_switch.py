"""``python -m bench lora-switch``: what switching between LoRAs costs in Easel.

Demo part (any device): the shipped demo model behind the real engine and the bundled LoRA
extension, two LoRAs (random rank-8 PEFT adapters on the UNet's attention projections,
written to a scratch ``models/Lora``). After both adapters are warm, 20 requests alternate
between them, 20 use the same one and 20 use none; the report gives the median request
time of each, the direct cost of one switch (``AdapterPool.activate`` between the two
warm adapters, median over 20), the cost of a first use (file read + conversion +
injection) and how often the base model was loaded meanwhile (must be 0).

SDXL part (CUDA only, or ``sdxl_switch`` called directly): the real SDXL UNet config
(``core/model_configs/sdxl/unet``) with random fp16 weights, two random rank-32 LoRAs on
every attention projection, put into the same ``AdapterPool``; reports the first-load
time of each, the median switch time and a UNet forward at 1024x1024 (CFG batch 2) for
scale.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from core.config import MODEL_CONFIGS_DIR, SHIPPED_MODELS_DIR, Settings

ATTENTION_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
SWITCHES = 20


def random_lora(
    module: torch.nn.Module, prefix: str, rank: int, seed: int, targets: tuple[str, ...] = ATTENTION_TARGETS
) -> dict[str, torch.Tensor]:
    """A LoRA in the diffusers/PEFT file layout for every Linear of ``module`` whose name ends
    with one of ``targets``, with seeded random weights (CPU tensors, the module's dtype)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, layer in module.named_modules():
        if not isinstance(layer, torch.nn.Linear) or not name.endswith(targets):
            continue
        down = torch.randn(rank, layer.in_features, generator=generator) / layer.in_features**0.5
        up = torch.randn(layer.out_features, rank, generator=generator) * 0.01
        dtype = layer.weight.dtype
        state[f"{prefix}.{name}.lora_A.weight"] = down.to(dtype).contiguous()
        state[f"{prefix}.{name}.lora_B.weight"] = up.to(dtype).contiguous()
    return state


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def _ms(seconds: list[float] | float) -> float:
    value = statistics.median(seconds) if isinstance(seconds, list) else seconds
    return round(value * 1000, 3)


def demo_switch(
    device: str, scratch: str, steps: int | None = None, model: str = "easel-demo"
) -> dict[str, Any]:
    """Switch cost through the engine on the shipped demo model (see the module doc)."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    from core.engine import Engine
    from core.host import Host
    from extensions.lora import STATE
    from extensions.lora.syntax import LoraUse
    from plugin_api import GenerationRequest

    root = Path(scratch) / "models"
    (root / "Stable-diffusion").mkdir(parents=True)
    (root / "Lora").mkdir()
    model_dir = SHIPPED_MODELS_DIR / "Stable-diffusion" / model
    (root / "Stable-diffusion" / model).symlink_to(model_dir, target_is_directory=True)
    unet = UNet2DConditionModel.from_pretrained(model_dir / "unet", torch_dtype=torch.float32)
    for name, seed in (("switch_a", 1), ("switch_b", 2)):
        save_file(random_lora(unet, "unet", 8, seed), str(root / "Lora" / f"{name}.safetensors"))
    del unet

    settings = Settings(models_dir=root, data_dir=Path(scratch) / "data", device=device, safe_mode=True)
    engine = Engine(Host(settings).start())
    steps = steps or 20

    def request(tag: str) -> Callable[[], Any]:
        def run() -> Any:
            request = GenerationRequest(
                prompt=f"a red circle on a blue background {tag}", seed=1, steps=steps, cfg_scale=6.0,
                width=128, height=128, sampler="Euler", model=model, save_images=False,
            )  # fmt: skip
            result = engine.generate(request)
            if result.warnings:
                raise RuntimeError(f"LoRA did not apply: {result.warnings}")
            return result

        return run

    dev = torch.device(engine.models.get(model).device)
    plain, with_a, with_b = request(""), request("<lora:switch_a:1>"), request("<lora:switch_b:0.8>")
    plain()  # warm-up: the model loads here
    loads, reads = engine.models.load_count, STATE.library.file_reads
    first_use = [_timed(with_a, dev), _timed(with_b, dev)]
    alternating = [_timed(with_a if i % 2 == 0 else with_b, dev) for i in range(SWITCHES)]
    same = [_timed(with_a, dev) for _ in range(SWITCHES)]
    none = [_timed(plain, dev) for _ in range(SWITCHES)]

    pool = STATE.pools.existing(engine.models.get(model))
    by_name = {a.info.name: a for a in pool.adapters.values()}
    chosen_a = [(by_name["switch_a"], LoraUse("switch_a", 1.0, 1.0))]
    chosen_b = [(by_name["switch_b"], LoraUse("switch_b", 0.8, 0.8))]
    with STATE.pools.lock, torch.inference_mode():
        switch = [
            _timed(lambda i=i: pool.activate(chosen_a if i % 2 else chosen_b), dev) for i in range(SWITCHES)
        ]
        off = [_timed(pool.deactivate, dev) for _ in range(SWITCHES)]
    return {
        "model": model,
        "device": _device_name(dev),
        "size": "128x128",
        "steps": steps,
        "requests_per_case": SWITCHES,
        "switch_ms": _ms(switch),
        "all_off_ms": _ms(off),
        "first_use_request_s": [round(s, 4) for s in first_use],
        "request_s_switching": round(statistics.median(alternating), 4),
        "request_s_same_lora": round(statistics.median(same), 4),
        "request_s_no_lora": round(statistics.median(none), 4),
        "switch_overhead_ms_end_to_end": _ms(statistics.median(alternating) - statistics.median(same)),
        "base_model_loads_during_switching": engine.models.load_count - loads,
        "lora_file_reads": STATE.library.file_reads - reads,  # 2: each file once, on first use
    }


class _Model:
    """The little of a loaded model that ``AdapterPool`` needs: components and family."""

    def __init__(self, family: str, components: dict[str, Any]) -> None:
        self.family, self.name, self.components = family, f"random-{family}", components


def sdxl_switch(device: str, unet_config: dict[str, Any] | None = None, rank: int = 32) -> dict[str, Any]:
    """Switch cost on an SDXL UNet with random weights (the real SDXL config unless
    ``unet_config`` is given, e.g. a tiny one for a CPU smoke test)."""
    from diffusers import UNet2DConditionModel

    from extensions.lora.adapters import AdapterPool, PoolRegistry
    from extensions.lora.library import LoraInfo
    from extensions.lora.syntax import LoraUse

    dev = torch.device(device)
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    config = unet_config or UNet2DConditionModel.load_config(MODEL_CONFIGS_DIR / "sdxl" / "unet")
    torch.manual_seed(0)
    started = time.perf_counter()
    with dev:
        unet = UNet2DConditionModel.from_config(config).to(dtype).eval()
    build_s = time.perf_counter() - started
    files = {name: random_lora(unet, "unet", rank, seed) for name, seed in (("xl_a", 1), ("xl_b", 2))}
    model = _Model("sdxl", {"unet": unet})
    pool: AdapterPool = PoolRegistry().for_model(model)
    adapters, first_load = {}, []
    for name, state in files.items():
        info = LoraInfo(name, Path(f"<random {name}>"), "sdxl", rank, name, 0, 0.0)
        with torch.inference_mode():
            first_load.append(
                _timed(
                    lambda i=info, s=state: adapters.update({i.name: pool.ensure(i, lambda _: s, set())}), dev
                )
            )
    chosen = [
        [(adapters["xl_a"], LoraUse("xl_a", 1.0, 1.0))],
        [(adapters["xl_b"], LoraUse("xl_b", 0.7, 0.7))],
    ]
    with torch.inference_mode():
        switch = [_timed(lambda i=i: pool.activate(chosen[i % 2]), dev) for i in range(SWITCHES)]
        off = [_timed(pool.deactivate, dev) for _ in range(SWITCHES)]
        side = config["sample_size"]
        latents = torch.randn(2, config["in_channels"], side, side, device=dev, dtype=dtype)
        text = torch.randn(2, 77, config["cross_attention_dim"], device=dev, dtype=dtype)
        extra = {}
        if config.get("addition_embed_type") == "text_time":
            pooled = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
            extra = {
                "added_cond_kwargs": {
                    "text_embeds": torch.randn(2, pooled, device=dev, dtype=dtype),
                    "time_ids": torch.tensor(
                        [[side * 8, side * 8, 0, 0, side * 8, side * 8]] * 2, device=dev, dtype=dtype
                    ),
                }
            }
        pool.activate(chosen[0])
        step = lambda: unet(latents, 500, text, **extra)  # noqa: E731
        step()  # warm-up
        unet_step = [_timed(step, dev) for _ in range(3)]
    params = sum(p.numel() for p in unet.parameters())
    lora_params = sum(t.numel() for t in files["xl_a"].values())
    return {
        "model": f"SDXL UNet config, random weights ({params / 1e9:.2f}B params, {dtype})",
        "device": _device_name(dev),
        "lora_rank": rank,
        "lora_params": lora_params,
        "unet_build_s": round(build_s, 2),
        "first_load_ms": [_ms(s) for s in first_load],
        "switch_ms": _ms(switch),
        "all_off_ms": _ms(off),
        "unet_step_ms_cfg_batch2": _ms(unet_step),
        "latent_size": f"{side}x{side}",
    }


def run_lora_switch(device: str, scratch: str, steps: int | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {"workload": "lora-switch", "torch": torch.__version__}
    report["demo"] = demo_switch(device, scratch, steps)
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        report["sdxl"] = sdxl_switch(device)
    else:
        report["sdxl"] = "skipped: needs CUDA (run with --device cuda on a GPU machine)"
    return report
