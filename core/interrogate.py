"""Choosing the interrogator (image captioner) a request names, among those extensions
registered through ``register_interrogators``; a refusal says what to install."""

from __future__ import annotations

from collections.abc import Iterable

from plugin_api.types import InterrogatorSpec

# what an A1111 client asking for one of its built-in names should install here
INSTALL_HINT = (
    "install an extension that registers one through register_interrogators, or put BLIP "
    "captioning weights (config.json, the weights and the processor files of a "
    "BlipForConditionalGeneration) in models/BLIP/<folder> for the bundled 'blip' interrogator"
)


class InterrogatorUnavailable(Exception):
    """No registered interrogator can answer this name; the message says what to install."""


def find_interrogator(
    interrogators: Iterable[InterrogatorSpec], name: str, current_model: str | None
) -> InterrogatorSpec:
    """The interrogator called ``name``, else the first registered for the alias ``name``
    that can run for ``current_model``. Raises InterrogatorUnavailable naming why not."""
    wanted = (name or "clip").strip().casefold()
    specs = list(interrogators)
    exact = [s for s in specs if s.name.casefold() == wanted]
    by_alias = [s for s in specs if wanted in (a.casefold() for a in s.aliases)]
    problems = []
    for spec in exact + by_alias:
        if not exact and spec.for_models and current_model not in spec.for_models:
            # a captioner of one model's world answers A1111's generic names only for it
            problems.append(f"{spec.name!r} captions only {', '.join(spec.for_models)} images")
            continue
        missing = spec.missing() if spec.missing is not None else None
        if missing is None:
            return spec
        problems.append(f"{spec.name!r}: {missing}")
    known = ", ".join(s.name for s in specs) or "none"
    why = "; ".join(problems) if problems else f"no interrogator {name!r} is installed (installed: {known})"
    raise InterrogatorUnavailable(f"{why}; to caption with {name!r}, {INSTALL_HINT}")
