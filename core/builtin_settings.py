"""Settings of the core itself, registered through the same ``register_settings`` hook as
an extension's (a builtin plugin), so they appear in the Settings tab and in
``/sdapi/v1/options`` under A1111's names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.saving.output_settings import SPECS as OUTPUT_SPECS
from core.saving.output_settings import setting_checks
from plugin_api import SettingSpec, hookimpl

# A1111's name (modules/sd_models_xl.py computes ``force_zero_negative_prompt`` for every
# SDXL batch whose negative prompts are all ""; A1111 has no switch, it is always on).
# diffusers' StableDiffusionXLPipeline does the same (``force_zeros_for_empty_prompt``).
FORCE_ZERO_NEGATIVE_PROMPT = "force_zero_negative_prompt"
# A1111's "SD VAE" option: "Automatic", "None" or a VAE file (core/models/vae_files.py);
# a request's ``vae`` field (API override_settings.sd_vae, CLI --vae) wins over it
SD_VAE = "sd_vae"
# A1111's checkpoint option: the model a request without ``model`` uses, in every front end
# ("": the demo model, else the first one found)
SD_MODEL_CHECKPOINT = "sd_model_checkpoint"
# A1111's "Clip skip": what a request without ``clip_skip`` uses
CLIP_SKIP = "CLIP_stop_at_last_layers"
# what a request without a negative prompt uses, in every front end (the WebUI shows it
# in its negative prompt box); A1111 has none, and its default is empty too
DEFAULT_NEGATIVE_PROMPT = "default_negative_prompt"
# A1111's quick settings: the settings shown at the top of every page
QUICKSETTINGS = "quicksettings_list"
QUICKSETTINGS_DEFAULT = [SD_MODEL_CHECKPOINT, SD_VAE, CLIP_SKIP]
MAX_CLIP_SKIP = 12
# A1111's live preview options: the decoder (core/previews: "Approx cheap" is fitted from the
# model's own VAE, "TAESD" reads models/VAE-approx, "Full" is the VAE itself, "None") and
# how often; 0 is Easel's "automatic" (A1111 has no such value), -1 turns previews off
PREVIEW_METHOD = "show_progress_type"
PREVIEW_METHODS = ("Approx cheap", "TAESD", "Full", "None")  # core.previews.METHODS
PREVIEW_EVERY = "show_progress_every_n_steps"


@hookimpl
def register_settings(register: Callable[[SettingSpec], None]) -> None:
    register(
        SettingSpec(
            key=SD_MODEL_CHECKPOINT,
            default="",
            label="Stable Diffusion checkpoint",
            description="the model of every request that names none (empty: the demo model, else the first)",
        )
    )
    register(
        SettingSpec(
            key=CLIP_SKIP,
            default=1,
            choices=tuple(range(1, MAX_CLIP_SKIP + 1)),
            label="Clip skip",
            description="stop at the last layers of CLIP: 2 = the penultimate layer (requests may say otherwise)",
        )
    )
    register(
        SettingSpec(
            key=DEFAULT_NEGATIVE_PROMPT,
            default="",
            label="Default negative prompt",
            description="the negative prompt of every request that sends none (CLI, API, WebUI alike)",
        )
    )
    register(
        SettingSpec(
            key=QUICKSETTINGS,
            default=list(QUICKSETTINGS_DEFAULT),
            label="Quicksettings list",
            description="settings shown at the top of the WebUI (reload the page; a newly listed one: restart)",
        )
    )
    for spec in OUTPUT_SPECS:
        register(spec)
    register(
        SettingSpec(
            key=FORCE_ZERO_NEGATIVE_PROMPT,
            default=True,
            label="SDXL: zero embeddings for an empty negative prompt",
            description=(
                "As A1111 and diffusers (force_zeros_for_empty_prompt): an empty negative prompt "
                'on SDXL is a zero conditioning, not the encoding of "". Off: encode "".'
            ),
        )
    )
    register(
        SettingSpec(
            key=SD_VAE,
            default="Automatic",
            label="SD VAE",
            description=(
                "Automatic: a <checkpoint>.vae.safetensors beside the checkpoint (or a file in "
                "models/VAE named like it), else the checkpoint's own; None: the checkpoint's own; "
                "or a file name from models/VAE."
            ),
        )
    )
    register(
        SettingSpec(
            key=PREVIEW_METHOD,
            # ComfyUI's "auto": the tiny decoder where there is one, else the fitted map
            default="TAESD",
            label="Live preview method",
            choices=PREVIEW_METHODS,
            description=(
                "Approx cheap: a colour map fitted from the model's own VAE (free); TAESD: a tiny "
                "autoencoder, the model folder's own vae_approx/ or one from models/VAE-approx (taesd, "
                "taesdxl, taef1; the approximate map when there is none); Full: the model's VAE (exact, "
                "one decode per preview); None: no preview."
            ),
        )
    )
    register(
        SettingSpec(
            key=PREVIEW_EVERY,
            default=0,
            label="Live preview every N sampling steps",
            description="0: automatic (every step on a CPU, every 5th on a GPU); -1: no live preview.",
        )
    )


def _check_quicksettings(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(key, str) and key.strip() for key in value):
        raise ValueError(f"setting {QUICKSETTINGS!r} must be a list of setting names, not {value!r}")
    if len(value) > 32:
        raise ValueError(f"setting {QUICKSETTINGS!r} lists more than 32 settings")


def builtin_checks(outputs_root: Callable[[], Path]) -> dict[str, Callable[[Any], None]]:
    """Checks of the host's settings beyond their type and choices (UserSettings runs them
    when a value is set and when a stored one is read)."""
    checks = setting_checks(outputs_root)
    checks[QUICKSETTINGS] = _check_quicksettings
    return checks
