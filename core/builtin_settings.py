"""Settings of the core itself, registered through the same ``register_settings`` hook as
an extension's (a builtin plugin), so they appear in the Settings tab and in
``/sdapi/v1/options`` under A1111's names.
"""

from __future__ import annotations

from collections.abc import Callable

from plugin_api import SettingSpec, hookimpl

# A1111's name (modules/sd_models_xl.py computes ``force_zero_negative_prompt`` for every
# SDXL batch whose negative prompts are all ""; A1111 has no switch, it is always on).
# diffusers' StableDiffusionXLPipeline does the same (``force_zeros_for_empty_prompt``).
FORCE_ZERO_NEGATIVE_PROMPT = "force_zero_negative_prompt"
# A1111's "SD VAE" option: "Automatic", "None" or a VAE file (core/models/vae_files.py);
# a request's ``vae`` field (API override_settings.sd_vae, CLI --vae) wins over it
SD_VAE = "sd_vae"
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
            default="Approx cheap",
            label="Live preview method",
            choices=PREVIEW_METHODS,
            description=(
                "Approx cheap: a colour map fitted from the model's own VAE (free); TAESD: a tiny "
                "autoencoder from models/VAE-approx (taesd, taesdxl, taef1; the approximate map when "
                "there is none); Full: the model's VAE (exact, one decode per preview); None: no preview."
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
