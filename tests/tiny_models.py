"""Tiny SD1.5-, SDXL- and Z-Image-shaped models, built from configs with random weights.

Each is saved both as a diffusers folder and as a single-file checkpoint in the original
key layout (LDM / ComfyUI), written by converting the diffusers keys back to the original
names here (diffusers ships only the other direction). A single file gets its shapes
from a ``<stem>.config/`` folder beside it (configs + tokenizers, no weights; for
Z-Image, whose single files hold only the transformer, a full diffusers folder).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from plugin_api.testing import make_tiny_sd15, tiny_sd15_components

__all__ = [
    "make_tiny_sd15",
    "sd15_to_ldm",
    "tiny_sd15_components",
    "unet_to_ldm",
    "vae_to_ldm",
    "write_config_sidecar",
    "write_single_file",
]

RESNET_TO_LDM = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
UNET_DIRECT = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
}


def _resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return f"{RESNET_TO_LDM.get(head, head)}.{tail}"


def unet_to_ldm(state: dict[str, torch.Tensor], layers_per_block: int, up_has_attention: list[bool]) -> dict:
    """diffusers UNet2DConditionModel keys -> ``model.diffusion_model.*`` keys."""
    per = layers_per_block + 1
    out = {}
    for key, value in state.items():
        new = None
        for prefix, ldm in UNET_DIRECT.items():
            if key.startswith(prefix + "."):
                new = ldm + key[len(prefix) :]
        if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            i, j, rest = int(m[1]), int(m[2]), m[3]
            new = f"input_blocks.{per * i + j + 1}.0.{_resnet(rest)}"
        elif m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
            new = f"input_blocks.{per * int(m[1]) + int(m[2]) + 1}.1.{m[3]}"
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"input_blocks.{per * (int(m[1]) + 1)}.0.op.{m[2]}"
        elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.+)", key):
            new = f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
        elif m := re.match(r"mid_block\.attentions\.0\.(.+)", key):
            new = f"middle_block.1.{m[1]}"
        elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"output_blocks.{per * int(m[1]) + int(m[2])}.0.{_resnet(m[3])}"
        elif m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
            new = f"output_blocks.{per * int(m[1]) + int(m[2])}.1.{m[3]}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            i = int(m[1])
            new = f"output_blocks.{per * i + per - 1}.{2 if up_has_attention[i] else 1}.conv.{m[2]}"
        if new is None:
            raise KeyError(f"no LDM name for UNet key {key}")
        out["model.diffusion_model." + new] = value
    return out


VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_ldm(state: dict[str, torch.Tensor], num_blocks: int) -> dict:
    """diffusers AutoencoderKL keys -> ``first_stage_model.*`` keys (attention as 1x1 convs)."""
    out = {}
    for key, value in state.items():
        new = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        if m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", new):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", new):
            new = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", new):
            new = f"decoder.up.{num_blocks - 1 - int(m[1])}.block.{m[2]}.{m[3]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", new):
            new = f"decoder.up.{num_blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", new):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", new):
            new = f"{m[1]}.mid.attn_1.{VAE_ATTENTION[m[2]]}.{m[3]}"
            if m[3] == "weight" and value.ndim == 2:
                value = value[:, :, None, None]  # the original VAE uses 1x1 convolutions
        out["first_stage_model." + new] = value
    return out


def clip_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict:
    """transformers CLIPTextModel keys -> ``<prefix>text_model.*`` (transformers 5 dropped
    the ``text_model.`` level; real checkpoints have it)."""
    out = {}
    for key, value in state.items():
        if key.startswith("text_projection"):
            continue
        inner = key if key.startswith("text_model.") else "text_model." + key
        out[prefix + inner] = value
    return out


def sd15_to_ldm(components: dict[str, Any]) -> dict[str, torch.Tensor]:
    unet, vae = components["unet"], components["vae"]
    up_attention = ["CrossAttn" in t for t in unet.config.up_block_types]
    state = unet_to_ldm(unet.state_dict(), unet.config.layers_per_block, up_attention)
    state.update(vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels)))
    state.update(clip_to_ldm(components["text_encoder"].state_dict(), "cond_stage_model.transformer."))
    return state


def write_single_file(path: Path, state: dict[str, torch.Tensor]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(path))
    return path


def write_config_sidecar(diffusers_dir: Path, checkpoint: Path, keep_weights: bool = False) -> Path:
    """``<stem>.config/``: the diffusers folder's configs and tokenizers (weights too
    when ``keep_weights``), which the model manager prefers for that checkpoint."""
    target = checkpoint.with_name(checkpoint.stem + ".config")
    shutil.rmtree(target, ignore_errors=True)
    ignore = None if keep_weights else shutil.ignore_patterns("*.safetensors", "*.bin")
    shutil.copytree(diffusers_dir, target, ignore=ignore)
    return target


# --- SDXL --------------------------------------------------------------------------------


def tiny_sdxl_components(seed: int = 0) -> dict[str, Any]:
    """Two text encoders of different widths (the same width silently leaves the second
    on the meta device when loading a single file), the second with 10 layers (the SDXL
    detection key needs ``resblocks.9``)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from core.config import MODEL_CONFIGS_DIR

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=32 + 48,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=16,
        sample_size=64,
        scaling_factor=0.13025,
    )
    common = dict(bos_token_id=49406, eos_token_id=49407, vocab_size=49408, max_position_embeddings=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=4,
            num_hidden_layers=3,
            pad_token_id=49407,
            **common,
        )
    )
    text_encoder_2 = CLIPTextModelWithProjection(
        CLIPTextConfig(
            hidden_size=48,
            intermediate_size=64,
            num_attention_heads=4,
            num_hidden_layers=10,
            projection_dim=32,
            hidden_act="gelu",
            pad_token_id=0,
            **common,
        )
    )
    tokenizer_dir = str(MODEL_CONFIGS_DIR / "clip_tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir, model_max_length=77)
    tokenizer_2 = CLIPTokenizer.from_pretrained(tokenizer_dir, model_max_length=77, pad_token="!")
    assert len(tokenizer) == len(tokenizer_2) == 49408
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="leading",
    )
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "text_encoder_2": text_encoder_2.eval(),
        "tokenizer": tokenizer,
        "tokenizer_2": tokenizer_2,
        "scheduler": scheduler,
    }


def make_tiny_sdxl(folder: Path, seed: int = 0) -> Path:
    from diffusers import StableDiffusionXLPipeline

    StableDiffusionXLPipeline(**tiny_sdxl_components(seed)).save_pretrained(str(folder))
    return Path(folder)


OPENCLIP_NAMES = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}


def openclip_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict:
    """transformers CLIPTextModelWithProjection -> OpenCLIP keys (fused q/k/v)."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        key = key.removeprefix("text_model.")
        if key == "embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = value
        elif key == "embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = value
        elif key.startswith("final_layer_norm."):
            out[prefix + "ln_final." + key.split(".")[-1]] = value
        elif key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T.contiguous()
        elif m := re.match(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", key):
            qkv.setdefault((int(m[1]), m[3]), {})[m[2]] = value
        elif m := re.match(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", key):
            out[f"{prefix}transformer.resblocks.{m[1]}.{OPENCLIP_NAMES[m[2]]}.{m[3]}"] = value
        else:
            raise KeyError(f"no OpenCLIP name for {key}")
    for (layer, kind), parts in qkv.items():
        fused = torch.cat([parts["q"], parts["k"], parts["v"]])
        out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{kind}"] = fused
    return out


def sdxl_to_ldm(components: dict[str, Any]) -> dict[str, torch.Tensor]:
    unet, vae = components["unet"], components["vae"]
    up_attention = ["CrossAttn" in t for t in unet.config.up_block_types]
    state = unet_to_ldm(unet.state_dict(), unet.config.layers_per_block, up_attention)
    state.update(vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels)))
    state.update(clip_to_ldm(components["text_encoder"].state_dict(), "conditioner.embedders.0.transformer."))
    state.update(openclip_to_ldm(components["text_encoder_2"].state_dict(), "conditioner.embedders.1.model."))
    return state


# --- Z-Image -----------------------------------------------------------------------------

QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)
_TOKENIZER_CORPUS = [
    "a red circle on a blue background",
    "a photo of a cat sitting on a sofa, high quality, detailed",
    "一只猫坐在沙发上, 高质量",
    "green square yellow triangle purple star white black",
] * 4


def tiny_qwen_tokenizer():
    """A byte-level BPE tokenizer trained here (no download) with Qwen's special tokens
    and chat template, wrapped as the fast tokenizer class diffusers loads."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(_TOKENIZER_CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        additional_special_tokens=specials[1:],
        model_max_length=512,
    )
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer


def tiny_zimage_components(seed: int = 0) -> dict[str, Any]:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    tokenizer = tiny_qwen_tokenizer()
    torch.manual_seed(seed)
    text_encoder = Qwen3Model(
        Qwen3Config(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            max_position_embeddings=512,
        )
    )
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=32,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        cap_feat_dim=32,
        axes_dims=[4, 6, 6],
        axes_lens=[1024, 64, 64],
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=16,
        layers_per_block=1,
        norm_num_groups=16,
        sample_size=64,
        scaling_factor=0.3611,
        shift_factor=0.1159,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False
    )
    return {
        "transformer": transformer.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
        "scheduler": scheduler,
    }


def make_tiny_zimage(folder: Path, seed: int = 0) -> Path:
    from diffusers import ZImagePipeline

    ZImagePipeline(**tiny_zimage_components(seed)).save_pretrained(str(folder))
    return Path(folder)


ZIMAGE_TO_ORIGINAL = {
    "all_final_layer.2-1.": "final_layer.",
    "all_x_embedder.2-1.": "x_embedder.",
    ".attention.to_out.0.": ".attention.out.",
    ".attention.norm_k.": ".attention.k_norm.",
    ".attention.norm_q.": ".attention.q_norm.",
}


def zimage_to_single_file(components: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The transformer in the original Z-Image layout (fused qkv), ComfyUI-prefixed."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in components["transformer"].state_dict().items():
        if m := re.match(r"(.+)\.attention\.to_([qkv])\.weight", key):
            qkv.setdefault(m[1], {})[m[2]] = value
            continue
        for diffusers_name, original_name in ZIMAGE_TO_ORIGINAL.items():
            key = key.replace(diffusers_name, original_name)
        out["model.diffusion_model." + key] = value
    for block, parts in qkv.items():
        out[f"model.diffusion_model.{block}.attention.qkv.weight"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]]
        )
    return out


# --- SD 2.x ------------------------------------------------------------------------------

# The shipped SD2 configs with only the sizes shrunk: every other field (linear
# projections, upcast attention, OpenCLIP-as-CLIPTextModel with gelu, the tokenizer that
# pads with "!", the DDIM scheduler and its parameterization) stays as shipped.
TINY_SD2_UNET = {
    "block_out_channels": [32, 64],
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "attention_head_dim": [2, 4],
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "sample_size": 8,
}
TINY_SD2_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_hidden_layers": 3}
TINY_SD2_VAE = {
    "block_out_channels": [16, 16, 32, 32],
    "layers_per_block": 1,
    "norm_num_groups": 16,
    "sample_size": 64,
}


def _shipped_config(folder: str, component: str, file: str = "config.json") -> dict[str, Any]:
    import json

    from core.config import MODEL_CONFIGS_DIR

    return json.loads((MODEL_CONFIGS_DIR / folder / component / file).read_text("utf-8"))


def tiny_sd2_components(seed: int = 0, inpaint: bool = False) -> dict[str, Any]:
    """A tiny SD 2.x model from the shipped ``sd2`` (or ``sd2-inpaint``: 9-channel UNet,
    epsilon) config folder, sizes shrunk as above."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from core.config import MODEL_CONFIGS_DIR

    folder = "sd2-inpaint" if inpaint else "sd2"
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config({**_shipped_config(folder, "unet"), **TINY_SD2_UNET})
    vae = AutoencoderKL.from_config({**_shipped_config(folder, "vae"), **TINY_SD2_VAE})
    text_config = {k: v for k, v in _shipped_config(folder, "text_encoder").items() if k != "architectures"}
    text_encoder = CLIPTextModel(CLIPTextConfig(**{**text_config, **TINY_SD2_TEXT}))
    tokenizer_config = _shipped_config(folder, "tokenizer", "tokenizer_config.json")
    tokenizer = CLIPTokenizer.from_pretrained(
        str(MODEL_CONFIGS_DIR / "clip_tokenizer"),
        model_max_length=77,
        pad_token=tokenizer_config["pad_token"],
    )
    assert len(tokenizer) == 49408 and tokenizer.pad_token_id == 0  # SD2 pads with "!"
    scheduler = DDIMScheduler.from_config(_shipped_config(folder, "scheduler", "scheduler_config.json"))
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
        "scheduler": scheduler,
    }


def sd2_to_ldm(components: dict[str, Any]) -> dict[str, torch.Tensor]:
    """An SD 2.x single file: LDM UNet/VAE keys and the OpenCLIP text encoder under
    ``cond_stage_model.model.``, with the square ``text_projection`` real files carry
    (diffusers reads the q/k/v split width from it)."""
    unet, vae, text_encoder = components["unet"], components["vae"], components["text_encoder"]
    up_attention = ["CrossAttn" in t for t in unet.config.up_block_types]
    state = unet_to_ldm(unet.state_dict(), unet.config.layers_per_block, up_attention)
    state.update(vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels)))
    prefix = "cond_stage_model.model."
    state.update(openclip_to_ldm(text_encoder.state_dict(), prefix))
    width = text_encoder.config.hidden_size
    state[prefix + "text_projection"] = torch.eye(width)
    return state


def save_sd2_folder(components: dict[str, Any], folder: Path) -> Path:
    """A diffusers folder of the components (the pipeline class its UNet belongs to)."""
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    inpaint = components["unet"].config.in_channels == 9
    pipeline = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    pipeline(
        **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    ).save_pretrained(str(folder))
    return Path(folder)
