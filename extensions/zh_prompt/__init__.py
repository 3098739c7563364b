"""Chinese prompt enhancement: translate Chinese (or mixed) prompts into English for
CLIP-based checkpoints, or add English style hints for models that read Chinese.

Built only on ``plugin_api``: ``register_settings``, ``startup``, ``transform_prompt``
and ``ui_tabs``. The translator itself lives in ``translator`` (dictionary, offline and
deterministic) and ``neural`` (an optional local MarianMT/NLLB model).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from extensions.zh_prompt.translator import MODES, Translator
from plugin_api.errors import InvalidRequest
from plugin_api.hookspecs import hookimpl
from plugin_api.paths import confine
from plugin_api.types import FormSection, GenerationContext, GenerationRequest, SettingSpec

log = logging.getLogger("easel.zh_prompt")

NAME = "zh_prompt"
MODE_SETTING = "zh_prompt.mode"
MODEL_DIR_SETTING = "zh_prompt.model_dir"
USER_LEXICON_SETTING = "zh_prompt.user_lexicon"
MODE_CHOICES = ("auto", *MODES)
# families whose text encoder reads Chinese itself (Z-Image: Qwen3)
CHINESE_READING_FAMILIES = frozenset({"zimage"})


class _State:
    """What the extension keeps between hooks: the host (from ``startup``) and one
    translator, shared by generations and the WebUI tab."""

    def __init__(self) -> None:
        self.host: Any = None
        self.translator = Translator()
        self.user_lexicon_path: Path | None = None
        self.models_dir: Path | None = None

    def setting(self, key: str, default: Any) -> Any:
        if self.host is None:
            return default
        try:
            value = self.host.get_setting(key)
        except Exception:  # an unregistered or unreadable setting: use the default
            return default
        return default if value is None else value


STATE = _State()


@hookimpl
def register_settings(register) -> None:
    register(
        SettingSpec(
            key=MODE_SETTING,
            default="auto",
            label="Chinese prompts",
            choices=MODE_CHOICES,
            description=(
                "auto: translate for CLIP models (SD1.5, SDXL), augment for models that read "
                "Chinese (Z-Image); translate: English only; translate_keep: Chinese then "
                "English; augment: keep the Chinese, add English style hints; off."
            ),
        )
    )
    register(
        SettingSpec(
            key=MODEL_DIR_SETTING,
            default="",
            label="Neural translation model folder",
            description=(
                "A local MarianMT/NLLB folder inside the models folder (relative to it). "
                "Empty: dictionary translation only. Never downloaded."
            ),
            path="folder",
            path_root="models",
        )
    )
    register(
        SettingSpec(
            key=USER_LEXICON_SETTING,
            default="",
            label="User lexicon file",
            description=(
                "Your own word list (chinese<TAB>english): a file name inside <data dir>/zh_prompt/; "
                "empty: user_lexicon.tsv there"
            ),
            path="file",
        )
    )


@hookimpl
def startup(host) -> None:
    STATE.host = host
    STATE.models_dir = Path(host.settings.models_dir)
    path = user_lexicon_path()
    STATE.user_lexicon_path = path
    STATE.translator = Translator(user_lexicon_path=path, cache_dir=Path(host.settings.state_dir) / NAME)
    # Load the dictionaries in the background so the first Chinese prompt is not slow.
    threading.Thread(target=_preload, name="zh_prompt-preload", daemon=True).start()


def _preload() -> None:
    try:
        STATE.translator.load()
    except Exception:  # reported again, with the generation, when a prompt needs it
        log.exception("zh_prompt: loading the dictionaries failed")


def requested_mode(request: GenerationRequest) -> str | None:
    """The per-request mode from ``extension_args["zh_prompt"]``: ``{"mode": m}``, the
    A1111 alwayson_scripts form ``{"args": [m]}``, or a bare string."""
    args = request.extension_args.get(NAME)
    if isinstance(args, str):
        return args
    if isinstance(args, dict):
        if args.get("enabled") is False:
            return "off"
        if "mode" in args:
            return str(args["mode"])
        listed = args.get("args")
        if isinstance(listed, list | tuple) and listed:
            return str(listed[0])
    if isinstance(args, list | tuple) and args:
        return str(args[0])
    return None


ARG_KEYS = ("mode", "enabled", "args")


def _check_mode(value: Any, field: str) -> None:
    if not isinstance(value, str) or value not in MODE_CHOICES:
        raise InvalidRequest(field, f"expected one of {', '.join(MODE_CHOICES)}, got {value!r}")


@hookimpl
def validate_request(request: GenerationRequest, family: str) -> None:
    """Refuse malformed ``extension_args["zh_prompt"]`` before a job exists (an unknown
    mode used to be a warning and a wrong type was silently ignored)."""
    args = request.extension_args.get(NAME)
    field = f"extension_args.{NAME}"
    if args is None:
        return
    if isinstance(args, str):
        _check_mode(args, field)
    elif isinstance(args, dict):
        unknown = sorted(set(args) - set(ARG_KEYS))
        if unknown:
            raise InvalidRequest(f"{field}.{unknown[0]}", f"unknown key; expected {', '.join(ARG_KEYS)}")
        if "enabled" in args and not isinstance(args["enabled"], bool):
            raise InvalidRequest(f"{field}.enabled", f"expected true or false, got {args['enabled']!r}")
        if "mode" in args:
            _check_mode(args["mode"], f"{field}.mode")
        if "args" in args:
            listed = args["args"]
            if not isinstance(listed, list):
                raise InvalidRequest(f"{field}.args", f"expected a list [mode], got {listed!r}")
            if listed:
                _check_mode(listed[0], f"{field}.args.0")
    elif isinstance(args, list):
        if args:
            _check_mode(args[0], f"{field}.0")
    else:
        raise InvalidRequest(field, f'expected {{"mode": m}} or a mode name, got {type(args).__name__}')


def resolve_mode(request: GenerationRequest, ctx: GenerationContext) -> str:
    """The mode for this generation: the request's, else the setting; "auto" by family."""
    mode = requested_mode(request)
    if mode is not None and mode not in MODE_CHOICES:
        ctx.warnings.append(
            f"zh_prompt: unknown mode {mode!r} in extension_args (use one of {', '.join(MODE_CHOICES)}); "
            "using the setting"
        )
        mode = None
    if mode is None:
        mode = str(STATE.setting(MODE_SETTING, "auto"))
        if mode not in MODE_CHOICES:
            mode = "auto"
    if mode == "auto":
        mode = "augment" if ctx.family in CHINESE_READING_FAMILIES else "translate"
    return mode


def _setting_path(key: str) -> Path | None:
    """The host's confined path for a file/folder setting (None: empty, or no host). A
    value that leads outside its folder is refused by the host and treated as empty."""
    if STATE.host is None:
        return None
    try:
        return STATE.host.setting_path(key)
    except (KeyError, ValueError) as exc:
        log.warning("zh_prompt: %s", exc)
        return None


def user_lexicon_path() -> Path | None:
    """The user lexicon inside <data dir>/zh_prompt/, read from the setting on each call so
    a changed setting needs no restart; None before the host has started."""
    host = STATE.host
    if host is None:
        return None
    configured = _setting_path(USER_LEXICON_SETTING)
    if configured is not None:
        return configured
    return confine(Path(host.settings.data_dir) / NAME, "user_lexicon.tsv", "the user lexicon")


def neural_model_dir() -> Path | None:
    return _setting_path(MODEL_DIR_SETTING)


def convert(prompt: str, mode: str, warnings: list[str]) -> tuple[str, str]:
    """``prompt`` in ``mode``: (new prompt, backend used). Problems go to ``warnings``."""
    translator = STATE.translator
    translator.set_user_lexicon_path(user_lexicon_path())  # follows the setting, confined
    english = None
    backend = "dictionary"
    folder = neural_model_dir()
    if folder is not None and mode in {"translate", "translate_keep"} and translator.needs_work(prompt):
        try:
            from extensions.zh_prompt import neural

            english = neural.translate_prompt(prompt, folder)
            backend = "neural"
        except Exception as exc:  # any model trouble: the dictionary still works
            warnings.append(f"zh_prompt: neural translation unavailable, used the dictionary: {exc}")
    result = translator.apply(prompt, mode, english=english)
    for word in dict.fromkeys(result.unknown):
        warnings.append(f"zh_prompt: no translation for {word!r}; it was left out")
    return result.text, backend


@hookimpl
def transform_prompt(request: GenerationRequest, ctx: GenerationContext) -> None:
    if ctx.dry_run:  # the submit-time check: translating cannot refuse, the real run does it
        return
    if not (Translator.needs_work(request.prompt) or Translator.needs_work(request.negative_prompt)):
        return
    mode = resolve_mode(request, ctx)
    if mode == "off":
        return
    request.prompt, backend = convert(request.prompt, mode, ctx.warnings)
    request.negative_prompt, _ = convert(request.negative_prompt, mode, ctx.warnings)
    ctx.state[NAME] = {"mode": mode, "backend": backend}
    ctx.extra_params["ZH prompt"] = mode if backend == "dictionary" else f"{mode} ({backend})"


@hookimpl
def ui_tabs():
    from extensions.zh_prompt.tab import build

    return [("Chinese prompt", build)]  # translated by localizations/zh-CN.json


@hookimpl
def ui_form_sections() -> list[FormSection]:
    from extensions.zh_prompt import section

    return [FormSection(title="Chinese prompt", build=section.build, to_args=section.to_args)]
