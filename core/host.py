"""The host: settings, extensions and their registries, started and stopped together.

``startup(host)`` hooks receive this object; it is also what the engine, the job queue
and the front ends share.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core.builtin_settings import builtin_checks
from core.config import Settings
from core.plugins.generation_hooks import GenerationHooks
from core.plugins.manager import ExtensionManager
from core.plugins.registries import Registry
from core.user_settings import UserSettings
from plugin_api.extra_networks import ExtraNetworkCard, ExtraNetworkSpec
from plugin_api.types import (
    FormSection,
    InterrogatorSpec,
    PreprocessorSpec,
    SamplerSpec,
    ScriptSpec,
    SettingSpec,
    Tab,
    UpscalerSpec,
)

log = logging.getLogger("easel")


class Host:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.extensions = ExtensionManager(self.settings)
        self.samplers: Registry[SamplerSpec] = Registry("sampler", SamplerSpec)
        self.upscalers: Registry[UpscalerSpec] = Registry("upscaler", UpscalerSpec)
        self.preprocessors: Registry[PreprocessorSpec] = Registry("preprocessor", PreprocessorSpec)
        self.interrogators: Registry[InterrogatorSpec] = Registry("interrogator", InterrogatorSpec)
        self.extra_networks: Registry[ExtraNetworkSpec] = Registry("extra network", ExtraNetworkSpec)
        # A1111's selectable scripts (X/Y/Z plot...): core/scripts.py runs them
        self.scripts: Registry[ScriptSpec] = Registry("script", ScriptSpec)
        self.setting_specs: Registry[SettingSpec] = Registry("setting", SettingSpec, key="key")
        self.user_settings = UserSettings(
            self.settings.state_dir / "settings.json",
            self.setting_specs,
            roots={
                "data": self.settings.data_dir,
                "models": self.settings.models_dir,
                "outputs": self.settings.outputs_dir,
            },
            checks=builtin_checks(lambda: self.settings.outputs_dir),
        )
        self.generation_hooks = GenerationHooks(self.extensions.hooks)
        self.started = False

    def start(self) -> Host:
        """Load extensions, collect their registrations, then call ``startup``."""
        if self.started:
            return self
        self.extensions.load_all()
        self._collect("register_samplers", self.samplers)
        self._collect("register_upscalers", self.upscalers)
        self._collect("register_preprocessors", self.preprocessors)
        self._collect("register_interrogators", self.interrogators)
        self._collect("register_settings", self.setting_specs)
        self._collect("register_extra_networks", self.extra_networks)
        self._collect("register_scripts", self.scripts)
        self.extensions.hooks.call("startup", host=self)
        self.started = True
        return self

    def stop(self) -> None:
        if self.started:
            self.extensions.hooks.call("shutdown", host=self)
            self.extensions.close()
            self.started = False

    def _collect(self, hook: str, registry: Registry) -> None:
        for impl in self.extensions.hooks.implementations(hook):
            register = registry.register_for(impl.plugin_name)
            # every register_* hook may name ``host`` if its spec declares it
            self.extensions.hooks.call_one(hook, impl, {"register": register, "host": self})

    def get_setting(self, key: str) -> Any:
        return self.user_settings.get(key)

    def set_setting(self, key: str, value: Any) -> None:
        self.user_settings.set(key, value)

    def setting_path(self, key: str) -> Path | None:
        """A file/folder setting (``SettingSpec.path``) resolved inside its folder, or None
        when empty; raises ``ValueError`` if it would lead outside."""
        return self.user_settings.resolved_path(key)

    def save_extras_image(
        self, image: Any, info: dict[str, Any], source_info: dict[str, Any] | None = None
    ) -> Path:
        """Save an Extras (postprocessing) result as A1111 does: ``outputs/extras-images/
        NNNNN.png`` with ``info`` as its ``postprocessing``/``extras`` text and the source's
        ``parameters`` kept (core/saving/extras.py); returns the path."""
        from core.saving.extras import save_extras_image

        return save_extras_image(image, self.settings.outputs_dir, info, source_info)

    def register_api_routes(self, router: Any) -> None:
        self.extensions.hooks.call("register_api_routes", router=router)

    def extra_network_cards(self) -> list[dict[str, Any]]:
        """The extra-networks browser's cards: one dict per card (``ExtraNetworkCard``'s
        fields plus ``network``, the tag name, and ``extension``), network by network in
        registration order. A ``list_cards`` that raises is reported and lists nothing."""
        cards: list[dict[str, Any]] = []
        for spec in self.extra_networks:
            if spec.list_cards is None:
                continue
            owner = self.extra_networks.owner(spec.name) or "?"
            try:
                listed = list(spec.list_cards())
            except Exception:
                log.exception("extension %r: list_cards of extra network %r failed", owner, spec.name)
                continue
            for card in listed:
                if not isinstance(card, ExtraNetworkCard):
                    log.error("extension %r: list_cards returned %r, not an ExtraNetworkCard", owner, card)
                    continue
                cards.append({"network": spec.name, "extension": owner, **vars(card)})
        return cards

    def ui_tabs(self) -> list[tuple[str, Tab]]:
        """Tabs from every extension as ``(extension, Tab)``, in load order. A malformed
        result is reported and dropped; building the tab is the WebUI's job."""
        tabs: list[tuple[str, Tab]] = []
        for extension, result in self.extensions.hooks.call("ui_tabs", host=self):
            for item in result or []:
                if isinstance(item, Tab):
                    tabs.append((extension, item))
                elif isinstance(item, tuple) and len(item) == 2 and callable(item[1]):
                    tabs.append((extension, Tab(title=str(item[0]), build=item[1])))
                else:
                    log.error("extension %r: ui_tabs returned %r, not (title, build)", extension, item)
        return tabs

    def ui_form_sections(self, tab: str) -> list[tuple[str, FormSection]]:
        """The form sections of the ``tab`` form ("txt2img" or "img2img") as
        ``(extension, FormSection)``, in load order. A malformed result, a section for
        another tab or a second section of one extension is reported and dropped."""
        sections: list[tuple[str, FormSection]] = []
        seen: set[str] = set()
        for extension, result in self.extensions.hooks.call("ui_form_sections", host=self, tab=tab):
            for item in result or []:
                if not isinstance(item, FormSection) or not callable(item.build):
                    log.error(
                        "extension %r: ui_form_sections returned %r, not a FormSection", extension, item
                    )
                elif tab not in item.tabs:
                    continue
                elif extension in seen:
                    log.error(
                        "extension %r: a second form section (%r) for %s left out: its values would "
                        "share extension_args[%r] with the first",
                        extension, item.title, tab, extension,
                    )  # fmt: skip
                else:
                    seen.add(extension)
                    sections.append((extension, item))
        return sections
