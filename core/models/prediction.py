"""What a single-file checkpoint predicts: noise (epsilon) or velocity (v-prediction), and
whether it was trained with zero terminal SNR. Nothing in a checkpoint's name says so.

Rules, first match wins (``easel models`` shows the answer and where it came from):

1. A ``<checkpoint stem>.yaml`` beside the file, A1111's way: ``model.params.
   parameterization: "v"`` means v-prediction, anything else (or no such key) epsilon, as
   the LDM code those yamls configure defaults to "eps".
2. SDXL keys, ComfyUI's way: a ``v_pred`` tensor marks a v-prediction fine-tune; with it,
   a ``ztsnr`` tensor marks zero terminal SNR.
3. A ``<stem>.config/`` folder beside the file: its scheduler config decides (the user
   chose it for this file).
4. SD 2.x without either: a UNet that does not take plain 4-channel latents (inpainting,
   depth) is epsilon; otherwise ComfyUI's statistic on the weights: the population
   standard deviation of ``output_blocks.11.1.transformer_blocks.0.norm1.bias`` is above
   0.09 in the 768 v-prediction models (2.0-v, 2.1) and below it in the 512 epsilon
   ones (2.0/2.1-base). It reads one 1280-value tensor, not the model. When the tensor
   is absent (a non-standard UNet), the shipped SD2 config's v-prediction applies: 2.1-768
   is the SD2 most people use.
5. Otherwise (SD 1.x, SDXL without markers) the shipped config's epsilon.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ModelError

EPSILON = "epsilon"
V_PREDICTION = "v_prediction"
SDXL_V_KEY = "v_pred"
SDXL_ZTSNR_KEY = "ztsnr"
SD2_V_PROBE = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"
SD2_V_THRESHOLD = 0.09
CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"
# tensors whose statistics detection reads (core.models.header_cache keeps them per file)
PROBE_KEYS = (SD2_V_PROBE,)


@dataclass(frozen=True)
class Prediction:
    type: str  # EPSILON | V_PREDICTION
    zero_snr: bool = False
    source: str = ""  # why: "yaml model.yaml", "v_pred key", ...

    @property
    def label(self) -> str:
        """Short form for listings: "eps", "v", "v+ztsnr"."""
        return ("v" if self.type == V_PREDICTION else "eps") + ("+ztsnr" if self.zero_snr else "")

    def scheduler_overrides(self) -> dict[str, Any]:
        """``from_config`` options that give a scheduler this parameterization. Zero
        terminal SNR as diffusers implements it (rescaled betas) with "trailing" spacing,
        so sampling starts at the last training step, where the SNR is zero."""
        overrides: dict[str, Any] = {"prediction_type": self.type}
        if self.zero_snr:
            overrides.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
        return overrides


def yaml_beside(checkpoint: Path) -> Path | None:
    """A1111's config file for one checkpoint: the same name with ``.yaml``."""
    candidate = checkpoint.with_suffix(".yaml")
    return candidate if candidate.is_file() else None


def from_yaml(path: Path) -> Prediction:
    import yaml

    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelError(f"{path}: cannot read this checkpoint config: {exc}") from exc
    params = data.get("model", {}).get("params", {}) if isinstance(data, dict) else None
    if not isinstance(params, dict):
        raise ModelError(f"{path}: no model.params mapping (an LDM/A1111 checkpoint config has one)")
    value = params.get("parameterization", "eps")
    if value not in ("eps", "v"):
        raise ModelError(f'{path}: model.params.parameterization is {value!r}; expected "eps" or "v"')
    return Prediction(V_PREDICTION if value == "v" else EPSILON, source=f"{path.name}: parameterization {value}")


def from_scheduler_config(config: dict[str, Any], source: str) -> Prediction:
    zero_snr = bool(config.get("rescale_betas_zero_snr", False))
    return Prediction(str(config.get("prediction_type") or EPSILON), zero_snr, source)


def detect_prediction(
    checkpoint: Path,
    family: str,
    variant: str,
    shapes: dict[str, list[int]],
    probes: dict[str, float],
    sidecar_scheduler: dict[str, Any] | None,
) -> Prediction | None:
    """The parameterization of a single file (None: not a noise-prediction family)."""
    if family not in ("sd15", "sdxl"):
        return None
    beside = yaml_beside(checkpoint)
    if beside is not None:
        return from_yaml(beside)
    if family == "sdxl" and SDXL_V_KEY in shapes:
        return Prediction(V_PREDICTION, SDXL_ZTSNR_KEY in shapes, source="v_pred key (ComfyUI)")
    if sidecar_scheduler is not None:
        return from_scheduler_config(sidecar_scheduler, f"{checkpoint.stem}.config scheduler")
    if variant.startswith("sd2"):
        conv_in = shapes.get(CONV_IN)
        if conv_in is not None and len(conv_in) > 1 and conv_in[1] != 4:
            return Prediction(EPSILON, source=f"SD2 UNet with {conv_in[1]} input channels")
        if SD2_V_PROBE in probes:
            std = probes[SD2_V_PROBE]
            kind = V_PREDICTION if std > SD2_V_THRESHOLD else EPSILON
            return Prediction(kind, source=f"SD2 weights: norm1.bias std {std:.3f} vs {SD2_V_THRESHOLD} (ComfyUI)")
        return Prediction(V_PREDICTION, source="shipped SD2 config (768 v)")
    if family == "sdxl":
        return Prediction(EPSILON, source="no v_pred key")
    return Prediction(EPSILON, source="SD1.x")
