"""BLIP captioning through transformers (``BlipForConditionalGeneration`` and its
processor), from a folder in ``models/BLIP``: config.json, the weights and the processor
files, as ``save_pretrained`` writes them. Nothing is downloaded: without a folder the
interrogator says what to put where."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

BLIP_FOLDER = "BLIP"
MAX_NEW_TOKENS = 40  # a caption, not a paragraph


class BlipCaptioner:
    """The first BLIP captioning model in ``models/BLIP``, loaded on first use."""

    def __init__(self, models_dir: Path) -> None:
        self.folder = Path(models_dir) / BLIP_FOLDER
        self._loaded: tuple[Path, Any, Any] | None = None
        self._lock = threading.Lock()  # two requests must not load it twice

    def find(self) -> Path | None:
        if not self.folder.is_dir():
            return None
        for candidate in sorted(p for p in self.folder.iterdir() if p.is_dir()):
            config = candidate / "config.json"
            try:
                model_type = json.loads(config.read_text()).get("model_type")
            except (OSError, ValueError):
                continue
            if model_type == "blip":
                return candidate
        return None

    def missing(self) -> str | None:
        if self.find() is None:
            return (
                f"no BLIP captioning model in {self.folder}: put a BlipForConditionalGeneration "
                "folder there (config.json, model.safetensors, the processor's files)"
            )
        return None

    def _load(self) -> tuple[Any, Any]:
        folder = self.find()
        if folder is None:
            raise RuntimeError(self.missing() or "no BLIP model")
        with self._lock:
            if self._loaded is None or self._loaded[0] != folder:
                import torch
                from transformers import BlipForConditionalGeneration, BlipProcessor

                device = "cuda" if torch.cuda.is_available() else "cpu"
                processor = BlipProcessor.from_pretrained(folder, local_files_only=True)
                model = BlipForConditionalGeneration.from_pretrained(folder, local_files_only=True)
                self._loaded = (folder, processor, model.to(device).eval())
            return self._loaded[1], self._loaded[2]

    def caption(self, image: Any) -> str:
        import torch

        processor, model = self._load()
        inputs = processor(images=image.convert("RGB"), return_tensors="pt").to(model.device)
        with torch.inference_mode():
            tokens = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS)
        return processor.decode(tokens[0], skip_special_tokens=True).strip()
