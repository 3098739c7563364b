"""Request bodies of the AUTOMATIC1111-compatible API, with A1111's field names.

A1111's pydantic-1 coercion applies (``A1111Lenient``: 2.5 -> 2 for ints, numeric
strings, null as the default). Unknown fields are ignored, as A1111 does, so clients written for it (and its many
options Easel does not have) work unmodified. Fields Easel does not use are still
declared where clients commonly send them, so ``/docs`` shows what is understood.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.api.schemas import (
    MAX_SEED,
    MAX_SIDE,
    ExtensionArgs,
    FreeJson,
    HiresFixFields,
    Name,
    PromptText,
)
from core.api.sdapi_coerce import A1111Lenient


class SdapiGenerationBase(A1111Lenient):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    prompt: PromptText = ""
    negative_prompt: PromptText | None = Field(None, description="None: the default_negative_prompt setting")
    styles: list[Name] = Field(default_factory=list, description="names from /sdapi/v1/prompt-styles")
    seed: int = Field(-1, ge=-1, le=MAX_SEED)
    subseed: int = Field(-1, ge=-1, le=MAX_SEED, description="accepted, not applied")
    subseed_strength: float = Field(0.0, ge=0, le=1)
    sampler_name: Name | None = None
    sampler_index: Name | None = Field(None, description="older name of sampler_name")
    scheduler: Name | None = Field(
        None, description='schedule type from /sdapi/v1/schedulers; None: "Automatic"'
    )
    shift: float | None = Field(None, gt=0, le=100, description="Easel: flow-matching models' sigma shift")
    batch_size: int = Field(1, ge=1, le=64)
    n_iter: int = Field(1, ge=1, le=100)
    steps: int | None = Field(None, ge=1, le=500, description="default: the model family's")
    cfg_scale: float | None = Field(None, ge=0, le=100)
    # Forge's field for guidance-distilled models (FLUX.1-dev)
    distilled_cfg_scale: float | None = Field(
        None, ge=0, le=100, description="FLUX.1-dev's Distilled CFG Scale"
    )
    width: int | None = Field(None, ge=8, le=MAX_SIDE, description="default: the model family's")
    height: int | None = Field(None, ge=8, le=MAX_SIDE)
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    eta: float | None = None
    denoising_strength: float | None = Field(None, ge=0, le=1)
    override_settings: dict[str, FreeJson] | None = None
    override_settings_restore_afterwards: bool = True
    script_name: Name | None = None
    script_args: list[FreeJson] = Field(default_factory=list)
    send_images: bool = True
    save_images: bool = False
    alwayson_scripts: ExtensionArgs = Field(default_factory=dict)
    infotext: PromptText | None = None


class SdapiTxt2ImgRequest(SdapiGenerationBase, HiresFixFields):
    firstphase_width: int = Field(0, description="accepted, not applied (older A1111)")
    firstphase_height: int = Field(0, description="accepted, not applied (older A1111)")


class SdapiImg2ImgRequest(SdapiGenerationBase):
    init_images: list[str] = Field(default_factory=list, max_length=16, description="base64 images")
    resize_mode: int = 0
    image_cfg_scale: float | None = None
    mask: str | None = Field(None, description="base64 image, white = repaint")
    mask_blur: int | None = Field(None, ge=0, le=256)
    mask_blur_x: int | None = None
    mask_blur_y: int | None = None
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = Field(32, ge=0, le=1024)
    inpainting_mask_invert: int = Field(0, ge=0, le=1)
    include_init_images: bool = False


class SdapiPngInfoRequest(A1111Lenient):
    image: str


class SdapiExtrasBase(A1111Lenient):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    resize_mode: int = Field(0, ge=0, le=1, description="0: by upscaling_resize, 1: to width x height")
    upscaling_resize: float = Field(2.0, gt=0, le=8)
    upscaling_resize_w: int = Field(512, ge=1, le=MAX_SIDE)
    upscaling_resize_h: int = Field(512, ge=1, le=MAX_SIDE)
    upscaler_1: Name = "None"
    upscaler_2: Name = "None"
    extras_upscaler_2_visibility: float = Field(0.0, ge=0, le=1)
    upscaling_crop: bool = Field(True, description="resize_mode 1: fill the size, crop the rest")
    upscale_first: bool = False
    show_extras_results: bool = True
    gfpgan_visibility: float = Field(0.0, description="accepted, not applied (no face restoration)")
    codeformer_visibility: float = Field(0.0, description="accepted, not applied")
    codeformer_weight: float = Field(0.0, description="accepted, not applied")


class SdapiExtraSingleImageRequest(SdapiExtrasBase):
    image: str


class SdapiFileData(BaseModel):
    data: str = Field(description="base64 image")
    name: Name = ""


class SdapiExtraBatchImagesRequest(SdapiExtrasBase):
    imageList: list[SdapiFileData] = Field(default_factory=list, max_length=64)


class SdapiInterrogateRequest(A1111Lenient):
    model_config = ConfigDict(extra="ignore")

    image: str = Field("", description="base64 image")
    model: Name = Field("clip", description='"clip" or "deepdanbooru" in A1111')
