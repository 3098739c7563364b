"""The interface language: the browser's, unless the ``ui.language`` setting names one.

Gradio's frontend picks its translation from ``navigator.language`` when the page loads.
To honour the setting, the page's ``<head>`` loads a tiny script from this server, run
before the Gradio bundle, that presents the chosen language as the browser's own.
"""

from __future__ import annotations

import json
from typing import Any

from plugin_api.types import SettingSpec
from ui.i18n import LANGUAGES

LANGUAGE_SETTING = "ui.language"
AUTO = "auto"
SCRIPT_PATH = "/easel-ui/language.js"
HEAD = f'<script src="{SCRIPT_PATH}"></script>'
OWNER = "webui"


def register_language_setting(host: Any) -> None:
    """The WebUI's own setting, registered beside the extensions' ones."""
    if host.setting_specs.get(LANGUAGE_SETTING) is None:
        host.setting_specs.add(
            SettingSpec(
                key=LANGUAGE_SETTING,
                default=AUTO,
                label="Interface language",
                choices=(AUTO, *LANGUAGES),
                description="auto follows the browser",
            ),
            OWNER,
        )


def chosen_language(host: Any) -> str:
    try:
        value = host.user_settings.get(LANGUAGE_SETTING)
    except KeyError:
        return AUTO
    return value if value in LANGUAGES else AUTO


def language_script(language: str) -> str:
    """JavaScript that makes the page see ``language`` as the browser language."""
    if language not in LANGUAGES:
        return "/* ui.language is auto: the browser's language is used */\n"
    value = json.dumps(language)
    return (
        "(function () {\n"
        f"  var lang = {value};\n"
        "  try {\n"
        "    Object.defineProperty(navigator, 'language', { get: function () { return lang; } });\n"
        "    Object.defineProperty(navigator, 'languages', { get: function () { return [lang]; } });\n"
        "  } catch (e) { console.warn('easel: cannot set the interface language', e); }\n"
        "})();\n"
    )


def add_language_route(app: Any, host: Any) -> None:
    """Serve the script (before Gradio is mounted at "/", which would shadow it)."""
    from fastapi.responses import Response

    @app.get(SCRIPT_PATH, include_in_schema=False)
    def easel_ui_language() -> Response:
        return Response(
            language_script(chosen_language(host)),
            media_type="application/javascript",
            headers={"Cache-Control": "no-store"},
        )
