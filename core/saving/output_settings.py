"""Where images go and how they are written: A1111's "Saving images" and "Paths" settings,
under A1111's option names, so ``/sdapi/v1/options`` clients read and set them as in A1111.

Folders are relative to the outputs folder (``<data dir>/outputs``, or the CLI's ``--out``)
and stay inside it: these settings can be changed by anyone who reaches the API (loopback
is no trust boundary), so an absolute path, ``..``, a device name or a symlink that leads
out is refused with an error naming the setting, when it is set and again when an image
is written (a symlink may be planted in between).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.saving.filenames import DEVICE_NAMES, NameFields, apply_pattern, check_pattern, check_relative_parts
from plugin_api.paths import UnsafePathError, confine
from plugin_api.types import SettingSpec

SAMPLES_FORMAT = "samples_format"
JPEG_QUALITY = "jpeg_quality"
WEBP_LOSSLESS = "webp_lossless"
FILENAME_PATTERN = "samples_filename_pattern"
ADD_NUMBER = "save_images_add_number"
SAVE_TO_DIRS = "save_to_dirs"
DIRECTORIES_PATTERN = "directories_filename_pattern"
OUTDIR_SAMPLES = "outdir_samples"
OUTDIR_TXT2IMG = "outdir_txt2img_samples"
OUTDIR_IMG2IMG = "outdir_img2img_samples"
FOLDER_SETTINGS = (OUTDIR_SAMPLES, OUTDIR_TXT2IMG, OUTDIR_IMG2IMG)
# A1111's values; "jpeg" is accepted too (the request field's spelling)
FORMAT_CHOICES = ("png", "jpg", "jpeg", "webp")
MAX_SAME_NAME = 500  # A1111 tries this many numbers for a free name

SPECS = (
    SettingSpec(
        key=SAMPLES_FORMAT,
        default="png",
        choices=FORMAT_CHOICES,
        label="File format for images",
        description="png keeps the parameters in a text chunk; jpg and webp in EXIF UserComment, as A1111. "
        "A request's output_format (CLI --format) wins.",
    ),
    SettingSpec(key=JPEG_QUALITY, default=80, label="Quality for saved jpeg and webp images (1-100)"),
    SettingSpec(key=WEBP_LOSSLESS, default=False, label="Lossless WebP"),
    SettingSpec(
        key=FILENAME_PATTERN,
        default="",
        label="Images filename pattern",
        description="empty: [seed]. Tags as A1111: [seed] [prompt_words] [prompt_spaces] [model_name] "
        "[sampler] [steps] [cfg] [width] [height] [datetime] [datetime<%Y%m%d>] [date] [styles] "
        "[batch_number] [clip_skip] [prompt_hash] ... No folders here: see the directory pattern.",
    ),
    SettingSpec(key=ADD_NUMBER, default=True, label="Add number to filename (00042-)"),
    SettingSpec(key=SAVE_TO_DIRS, default=True, label="Save images to a subdirectory"),
    SettingSpec(
        key=DIRECTORIES_PATTERN,
        default="[date]",
        label="Directory name pattern",
        description="empty: [prompt_words]; may hold '/' for nested folders, inside the output folder.",
    ),
    SettingSpec(
        key=OUTDIR_SAMPLES,
        path="folder",
        path_root="outputs",
        default="",
        label="Output directory for images",
        description="relative to the outputs folder; if set, every image goes here (not the two below).",
    ),
    SettingSpec(
        key=OUTDIR_TXT2IMG,
        path="folder",
        path_root="outputs",
        default="txt2img-images",
        label="Output directory for txt2img images",
        description="relative to the outputs folder",
    ),
    SettingSpec(
        key=OUTDIR_IMG2IMG,
        path="folder",
        path_root="outputs",
        default="img2img-images",
        label="Output directory for img2img images",
        description="relative to the outputs folder",
    ),
)


def _check_quality(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise ValueError(f"setting {JPEG_QUALITY!r} must be a whole number from 1 to 100, not {value!r}")


def setting_checks(outputs_root: Callable[[], Path]) -> dict[str, Callable[[Any], None]]:
    """Checks beyond type and choices, by key (``UserSettings`` runs them on set and read)."""

    def folder(key: str) -> Callable[[Any], None]:
        def check(value: Any) -> None:
            if not isinstance(value, str):
                raise ValueError(f"setting {key!r} must be text, not {value!r}")
            if value.strip():
                check_pattern(value, f"setting {key!r}", folders=True)
                check_relative_parts(value, f"setting {key!r}")
                confine(outputs_root(), value, f"setting {key!r}")  # symlinks that lead out

        return check

    checks: dict[str, Callable[[Any], None]] = {key: folder(key) for key in FOLDER_SETTINGS}
    checks[FILENAME_PATTERN] = lambda v: check_pattern(v, f"setting {FILENAME_PATTERN!r}", folders=False)
    checks[DIRECTORIES_PATTERN] = lambda v: check_pattern(v, f"setting {DIRECTORIES_PATTERN!r}", folders=True)
    checks[JPEG_QUALITY] = _check_quality
    return checks


@dataclass(frozen=True)
class OutputOptions:
    """The saving settings one image is written with."""

    output_format: str = "png"
    jpeg_quality: int = 80
    webp_lossless: bool = False
    filename_pattern: str = ""
    add_number: bool = True
    save_to_dirs: bool = True
    directories_pattern: str = "[date]"
    outdir_samples: str = ""
    outdir_txt2img: str = "txt2img-images"
    outdir_img2img: str = "img2img-images"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> OutputOptions:
        """From a settings mapping (``ctx.settings``); missing keys keep the defaults."""
        names = {
            SAMPLES_FORMAT: "output_format", JPEG_QUALITY: "jpeg_quality", WEBP_LOSSLESS: "webp_lossless",
            FILENAME_PATTERN: "filename_pattern", ADD_NUMBER: "add_number", SAVE_TO_DIRS: "save_to_dirs",
            DIRECTORIES_PATTERN: "directories_pattern", OUTDIR_SAMPLES: "outdir_samples",
            OUTDIR_TXT2IMG: "outdir_txt2img", OUTDIR_IMG2IMG: "outdir_img2img",
        }  # fmt: skip
        values = {attr: settings[key] for key, attr in names.items() if key in settings}
        return cls(**values)

    def folder(self, root: Path, mode: str, fields: NameFields) -> Path:
        """The folder an image of ``mode`` goes to, confined to ``root`` (UnsafePathError
        naming the setting otherwise)."""
        if self.outdir_samples.strip():
            key, base = OUTDIR_SAMPLES, self.outdir_samples
        elif mode == "txt2img":
            key, base = OUTDIR_TXT2IMG, self.outdir_txt2img
        else:
            key, base = OUTDIR_IMG2IMG, self.outdir_img2img
        base = base.strip() or ("txt2img-images" if mode == "txt2img" else "img2img-images")
        check_relative_parts(base, f"setting {key!r}")
        folder = confine(root, base, f"setting {key!r}")
        if self.save_to_dirs:
            parts = [_safe_folder_part(p) for p in re.split(r"[\\/]+", self._directory_name(fields))]
            parts = [p for p in parts if p]
            if parts:
                folder = confine(folder, "/".join(parts), f"setting {DIRECTORIES_PATTERN!r}")
        if not folder.is_relative_to(Path(root).resolve()):
            raise UnsafePathError(f"setting {key!r} leads outside the outputs folder")
        return folder

    def _directory_name(self, fields: NameFields) -> str:
        return apply_pattern(self.directories_pattern or "[prompt_words]", fields).strip("\\ /")

    def decoration(self, fields: NameFields) -> str:
        """The file name after the number (A1111's ``file_decoration``), without suffix."""
        name = apply_pattern((self.filename_pattern or "[seed]").lower(), fields)
        name = name.replace("/", "_").replace("\\", "_")  # the check refused them; belt and braces
        return name.rstrip(" .")


def _safe_folder_part(part: str) -> str:
    """A folder name a tag produced: a device name gets a "_" (a prompt "con" must not
    make the Windows device), "." and ".." become nothing."""
    part = part.strip()
    if part in {".", ".."}:
        return ""
    return part + "_" if DEVICE_NAMES.match(part) else part


def file_name(decoration: str, number: int | None, suffix: str) -> str:
    """``00042-<decoration>.png`` (A1111), or ``<decoration>.png`` without a number."""
    if number is None:
        return f"{decoration or 'image'}{suffix}"
    return f"{number:05d}{'-' + decoration if decoration else ''}{suffix}"
