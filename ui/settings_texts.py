"""The Settings tab's and the quick-settings bar's texts (merged into ``ui.i18n.TEXTS``;
kept here so that the settings work and the translations of other tabs do not collide)."""

from __future__ import annotations

# key: (English, Simplified Chinese)
SETTINGS_TEXTS: dict[str, tuple[str, str]] = {
    "set.section.saving": ("Saving images", "保存图片"),
    "set.section.paths": ("Paths for saving", "保存路径"),
    "set.section.sd": ("Stable Diffusion", "Stable Diffusion 模型"),
    "set.section.defaults": ("Generation defaults", "生成默认值"),
    "set.section.ui": ("User interface", "用户界面"),
    "set.section.other": ("Other", "其他"),
    "set.applies": (
        "Saved settings apply to the next generation from every front end (WebUI, API, CLI); "
        "a request's own value wins.",
        "保存的设置对之后的每次生成生效(WebUI、API、命令行);请求中自带的值优先。",
    ),
    "quick.bar": ("Quick settings", "快捷设置"),
}
