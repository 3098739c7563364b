"""Image captioning (A1111's "interrogate") for ``/sdapi/v1/interrogate`` and the WebUI's
Interrogate buttons, registered through ``register_interrogators``:

- ``blip``: BLIP captioning through transformers when a model folder is in
  ``models/BLIP`` (A1111's ``clip`` interrogator starts from a BLIP caption; its CLIP
  ranking of artists and mediums is not done here);
- ``easel-demo``: the demo model's world (colour, shape, position, background) read by
  the demo judge, as a caption in the phrasing the demo model was trained on; it answers
  A1111's ``clip`` only while the demo model is the current one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from extensions.interrogate.blip import BlipCaptioner
from extensions.interrogate.demo_world import caption as demo_caption
from plugin_api import InterrogatorSpec, hookimpl

DEMO_MODEL = "easel-demo"
_SHIPPED_MODELS = Path(__file__).resolve().parents[2] / "models"


class _State:
    def __init__(self) -> None:
        self.blip = BlipCaptioner(_SHIPPED_MODELS)


STATE = _State()


@hookimpl
def startup(host: Any) -> None:
    STATE.blip = BlipCaptioner(Path(host.settings.models_dir))


@hookimpl
def register_interrogators(register: Any) -> None:
    # BLIP first: when its weights are there it answers "clip" for every model
    register(
        InterrogatorSpec(
            name="blip",
            interrogate=lambda image: STATE.blip.caption(image),
            aliases=("clip",),
            missing=lambda: STATE.blip.missing(),
            note="BLIP captioning (transformers) from models/BLIP",
        )
    )
    register(
        InterrogatorSpec(
            name="easel-demo",
            interrogate=demo_caption,
            aliases=("clip",),
            for_models=(DEMO_MODEL,),
            note="the demo model's colours, shapes and positions, in its training phrasing",
        )
    )
