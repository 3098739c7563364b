"""A request's images survive the queue: what a job runner reads back is what was sent.

Extension arguments may hold PIL images (a ControlNet unit's control image from an
in-process caller such as an extension tab): the queue stores JSON, so they must go in as
base64 PNG and come back as images with the same pixels, wherever they sit in the
arguments. Session 8's planted bug (images in ``extension_args`` stored as their repr)
broke the WebUI ControlNet path through the queue."""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.jobs import SqliteJobQueue
from core.jobs.requests import request_from_json, request_to_json
from plugin_api.types import GenerationRequest


def _picture(seed: int, mode: str = "RGB") -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def test_images_in_extension_args_and_fields_come_back_with_their_pixels(tmp_path):
    control, mask, init = _picture(1), _picture(2, "L"), _picture(3)
    request = GenerationRequest(
        prompt="p",
        init_image=init,
        extension_args={
            "controlnet": {"units": [{"image": control, "weight": 0.5}, {"enabled": False}]},
            "other": {"mask": mask, "note": "text", "n": 3},
        },
    )
    queue = SqliteJobQueue(tmp_path / "queue.db")
    try:
        job = queue.put("img2img", request_to_json(request))
        restored = request_from_json(queue.get(job.id).request)
    finally:
        queue.close()
    units = restored.extension_args["controlnet"]["units"]
    assert np.array_equal(np.asarray(units[0]["image"]), np.asarray(control))
    assert units[0]["weight"] == 0.5 and units[1] == {"enabled": False}
    other = restored.extension_args["other"]
    assert np.array_equal(np.asarray(other["mask"]), np.asarray(mask))
    assert (other["note"], other["n"]) == ("text", 3)
    assert np.array_equal(np.asarray(restored.init_image), np.asarray(init))
