"""What the server offers (models, samplers, upscalers, LoRAs, options) as the API shows
it, shared by the native and the A1111-compatible routes."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from core.errors import ModelError, RequestError
from core.models.files import read_safetensors_header, sniff_format
from plugin_api.scanning import LORA_SUFFIXES, scan_model_files

LORA_FOLDER = "Lora"


class Catalog:
    """Adapts the engine and host registries for the API, and keeps the server's own
    options (the default model chosen through ``/sdapi/v1/options``) in the data folder."""

    def __init__(self, host: Any, engine: Any) -> None:
        self.host = host
        self.engine = engine
        self._options_path = Path(host.settings.state_dir) / "api_options.json"
        self._lock = threading.Lock()

    # --- models ----------------------------------------------------------------------

    def models(self) -> list[Any]:
        return list(self.engine.models.list()) if self.engine is not None else []

    def model_info(self, name: str, field: str = "model") -> Any:
        """The model named ``name`` (a name, A1111's "name [hash]", a file name or a
        hash); RequestError naming ``field`` when there is none."""
        if "\x00" in name or ".." in Path(name.split(" [", 1)[0]).parts:
            raise RequestError(field, f"invalid model name {name!r}")
        try:
            return self.engine.models.info(name)
        except (ModelError, KeyError) as exc:
            raise RequestError(field, str(exc).strip("'\"")) from None

    def default_model(self) -> str | None:
        """The ``sd_model_checkpoint`` setting (kept by the host for every front end; before
        it was a setting, /sdapi/v1/options kept it in api_options.json, still read), else
        the engine's default."""
        chosen = self._setting_or_none("sd_model_checkpoint") or self._options().get("sd_model_checkpoint")
        if chosen and chosen in {m.name for m in self.models()}:
            return chosen
        return self.engine.models.default_name() if self.engine is not None else None

    def set_default_model(self, value: str) -> str:
        info = self.model_info(value, "sd_model_checkpoint")
        try:
            self.host.set_setting("sd_model_checkpoint", info.name)
        except (KeyError, AttributeError):  # a host without the builtin settings
            self._update_options({"sd_model_checkpoint": info.name})
        return info.name

    def _setting_or_none(self, key: str) -> Any:
        try:
            return self.host.get_setting(key)
        except (KeyError, AttributeError):
            return None

    @staticmethod
    def model_title(info: Any) -> str:
        return f"{info.name} [{info.hash}]" if getattr(info, "hash", None) else info.name

    # --- samplers, upscalers, LoRAs --------------------------------------------------------

    def samplers(self) -> list[Any]:
        return list(self.host.samplers)

    def upscalers(self) -> list[Any]:
        return list(self.host.upscalers)

    def _lora_problem(self, path: Path) -> str | None:
        """Why a LoRA file cannot be used, judged from its first bytes and header; None if it can."""
        try:
            kind = sniff_format(path)
        except ModelError as exc:
            return str(exc)
        if kind == "pickle":
            allowed = bool(getattr(self.host.settings, "allow_pickle", False))
            return None if allowed else f"{path.name}: a pickle file; start with --allow-pickle to use it"
        if kind != "safetensors":
            return f"{path.name}: not a safetensors or torch file (damaged or another format)"
        try:
            read_safetensors_header(path)
        except ModelError as exc:
            return str(exc)
        return None

    def loras(self) -> list[dict[str, Any]]:
        """LoRA files in every Lora folder the engine knows (the user's, then the shipped
        one); a name found twice is listed once, the user's copy winning."""
        folders = self.engine.models.folders(LORA_FOLDER) if self.engine is not None else []
        found: dict[str, dict[str, Any]] = {}
        for root in folders:
            # the LoRA library's own scanner: both list the same files (regular files,
            # links followed once), whatever the folder holds
            for item in scan_model_files(root, LORA_SUFFIXES):
                path = item.path
                if path.stem not in found:
                    found[path.stem] = {
                        "name": path.stem,
                        "alias": path.stem,
                        "path": str(path),
                        "metadata": {},
                        # A1111 lists every file; Easel also says which cannot be used and why
                        "error": self._lora_problem(path),
                    }
        return sorted(found.values(), key=lambda item: item["name"].casefold())

    def extension_names(self) -> dict[str, str]:
        """Loaded extensions by folded name (for alwayson_scripts look-ups)."""
        return {r.name.casefold(): r.name for r in self.host.extensions.loaded() if r.source != "builtin"}

    # --- persisted options ------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        try:
            data = json.loads(self._options_path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _update_options(self, values: dict[str, Any]) -> None:
        with self._lock:
            data = {**self._options(), **values}
            self._options_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._options_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2), "utf-8")
            tmp.replace(self._options_path)
