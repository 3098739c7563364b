"""Control-image preprocessors: the built-in ones (OpenCV/numpy, no weights) and the
controlnet-aux annotators that need weight files in ``models/ControlNet/annotators``.

Every ``process(image, **options)`` takes and returns a PIL image; the options a unit
passes are ``threshold_a``, ``threshold_b`` (A1111's two sliders; ``None`` = the
preprocessor's default) and ``resolution`` (A1111's ``processor_res``). Annotators are
loaded from local files only (``from_pretrained(<folder>)``), never downloaded; a missing
file raises ``PreprocessorWeightsMissing`` naming it and where it must go.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from plugin_api.types import PreprocessorSpec

ANNOTATORS_FOLDER = "annotators"
# A1111 names for the same thing -> ours
ALIASES = {
    "invert (from white bg & black line)": "invert",
    "threshold": "binary",
    "depth": "depth_midas",
    "hed": "softedge_hed",
    "pidinet": "softedge_pidinet",
    "lineart": "lineart_realistic",
    "openpose_full": "openpose",
    "normal": "normal_bae",
    "blur": "blur_gaussian",
    "tile": "tile_resample",
}


class PreprocessorWeightsMissing(Exception):
    """A preprocessor's weight file is not in the annotators folder."""


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def _gray_to_rgb(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2).astype(np.uint8))


def canny(image: Image.Image, threshold_a: float | None = None, threshold_b: float | None = None, **_: Any):
    """cv2.Canny on the RGB image (A1111's and the demo ControlNet's training map)."""
    import cv2

    low = 100 if threshold_a is None else int(threshold_a)
    high = 200 if threshold_b is None else int(threshold_b)
    return _gray_to_rgb(cv2.Canny(_rgb(image), low, high))


def binary(image: Image.Image, threshold_a: float | None = None, **_: Any) -> Image.Image:
    """White where the grey value is above the threshold (0 = Otsu's threshold)."""
    import cv2

    gray = cv2.cvtColor(_rgb(image), cv2.COLOR_RGB2GRAY)
    level = 0 if threshold_a is None else int(threshold_a)
    flags = cv2.THRESH_BINARY + (cv2.THRESH_OTSU if level in (0, 255) else 0)
    _, out = cv2.threshold(gray, level, 255, flags)
    return _gray_to_rgb(out)


def scribble_threshold(image: Image.Image, threshold_a: float | None = None, **_: Any) -> Image.Image:
    """Dark strokes on a light page -> white strokes on black (what scribble models expect)."""
    import cv2

    gray = cv2.cvtColor(_rgb(image), cv2.COLOR_RGB2GRAY)
    level = 127 if threshold_a is None else int(threshold_a)
    return _gray_to_rgb(np.where(gray < level, 255, 0))


def scribble_xdog(image: Image.Image, threshold_a: float | None = None, **_: Any) -> Image.Image:
    """A1111's XDoG scribble: difference of Gaussians, thresholded (no weights)."""
    import cv2

    rgb = _rgb(image).astype(np.float32)
    level = 32 if threshold_a is None else float(threshold_a)
    dog = cv2.GaussianBlur(rgb, (0, 0), 0.5) - cv2.GaussianBlur(rgb, (0, 0), 5.0)
    return _gray_to_rgb(np.where(dog.min(axis=2) < -level, 255, 0))


def invert(image: Image.Image, **_: Any) -> Image.Image:
    """Black lines on white -> white lines on black (A1111's "invert")."""
    return Image.fromarray(255 - _rgb(image))


def shuffle(image: Image.Image, threshold_a: float | None = None, **_: Any) -> Image.Image:
    """Content shuffle: warp the image with a smooth random flow (seeded: repeatable)."""
    import cv2

    rgb = _rgb(image)
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(0 if threshold_a is None else int(threshold_a))
    cells = 8

    def field(size: float) -> np.ndarray:
        coarse = rng.random((cells, cells)).astype(np.float32)
        return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) * (size - 1)

    return Image.fromarray(cv2.remap(rgb, field(w), field(h), cv2.INTER_LINEAR))


def tile_resample(image: Image.Image, threshold_a: float | None = None, **_: Any) -> Image.Image:
    """Down-sample by ``threshold_a`` (default 1 = unchanged) and back: a tile model's input."""
    factor = 1.0 if threshold_a is None else max(1.0, float(threshold_a))
    if factor == 1.0:
        return image.convert("RGB")
    small = image.convert("RGB").resize(
        (max(1, round(image.width / factor)), max(1, round(image.height / factor))), Image.Resampling.LANCZOS
    )
    return small.resize(image.size, Image.Resampling.BICUBIC)


def blur_gaussian(image: Image.Image, threshold_a: float | None = None, **_: Any) -> Image.Image:
    radius = 9.0 if threshold_a is None else float(threshold_a)
    return image.convert("RGB").filter(ImageFilter.GaussianBlur(radius))


def none(image: Image.Image, **_: Any) -> Image.Image:
    return image.convert("RGB")


BUILTIN: dict[str, Callable[..., Image.Image]] = {
    "none": none,
    "canny": canny,
    "binary": binary,
    "invert": invert,
    "scribble_threshold": scribble_threshold,
    "scribble_xdog": scribble_xdog,
    "shuffle": shuffle,
    "tile_resample": tile_resample,
    "blur_gaussian": blur_gaussian,
}


@dataclass(frozen=True)
class Annotator:
    """A controlnet-aux detector: module, class, the files it reads, call options."""

    module: str
    cls: str
    files: tuple[str, ...]
    options: tuple[tuple[str, Any], ...] = ()


ANNOTATORS: dict[str, Annotator] = {
    "depth_midas": Annotator("controlnet_aux.midas", "MidasDetector", ("dpt_hybrid-midas-501f0c75.pt",)),
    "openpose": Annotator(
        "controlnet_aux.open_pose",
        "OpenposeDetector",
        ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"),
    ),
    "lineart_realistic": Annotator(
        "controlnet_aux.lineart", "LineartDetector", ("sk_model.pth", "sk_model2.pth")
    ),
    "lineart_anime": Annotator("controlnet_aux.lineart_anime", "LineartAnimeDetector", ("netG.pth",)),
    "softedge_hed": Annotator("controlnet_aux.hed", "HEDdetector", ("ControlNetHED.pth",)),
    "scribble_hed": Annotator(
        "controlnet_aux.hed", "HEDdetector", ("ControlNetHED.pth",), (("scribble", True),)
    ),
    "softedge_pidinet": Annotator("controlnet_aux.pidi", "PidiNetDetector", ("table5_pidinet.pth",)),
    "mlsd": Annotator("controlnet_aux.mlsd", "MLSDdetector", ("mlsd_large_512_fp32.pth",)),
    "normal_bae": Annotator("controlnet_aux.normalbae", "NormalBaeDetector", ("scannet.pt",)),
}


class AnnotatorPool:
    """Loads each controlnet-aux detector once, from the annotators folder only."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._loaded: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def missing(self, files: tuple[str, ...]) -> list[str]:
        return [name for name in files if not (self.folder / name).is_file()]

    def require(self, name: str, files: tuple[str, ...]) -> None:
        absent = self.missing(files)
        if absent:
            raise PreprocessorWeightsMissing(
                f"preprocessor {name!r} needs {', '.join(absent)} in {self.folder} "
                "(the lllyasviel/Annotators files; Easel never downloads them)"
            )

    def detector(self, name: str, annotator: Annotator) -> Any:
        self.require(name, annotator.files)
        import importlib

        key = (annotator.module + "." + annotator.cls, str(self.folder))
        with self._lock:
            if key not in self._loaded:
                try:
                    cls = getattr(importlib.import_module(annotator.module), annotator.cls)
                except ImportError as exc:
                    raise PreprocessorWeightsMissing(
                        f"preprocessor {name!r} needs a Python package that is not installed: {exc}"
                    ) from exc
                self._loaded[key] = cls.from_pretrained(str(self.folder))
            return self._loaded[key]

    def process_fn(self, name: str, annotator: Annotator) -> Callable[..., Image.Image]:
        def process(image: Image.Image, resolution: int = 512, **_: Any) -> Image.Image:
            detector = self.detector(name, annotator)
            out = detector(
                image.convert("RGB"),
                detect_resolution=int(resolution),
                image_resolution=int(resolution),
                output_type="pil",
                **dict(annotator.options),
            )
            return out.convert("RGB")

        return process


def builtin_specs(pool: AnnotatorPool) -> list[PreprocessorSpec]:
    specs = [PreprocessorSpec(name=name, process=fn) for name, fn in BUILTIN.items()]
    specs += [
        PreprocessorSpec(name=name, process=pool.process_fn(name, annotator), needs_weights=annotator.files)
        for name, annotator in ANNOTATORS.items()
    ]
    return specs


def canonical_name(name: str) -> str:
    key = (name or "none").strip().lower()
    return ALIASES.get(key, key)
