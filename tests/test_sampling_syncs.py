"""The sampling loop reads no tensor value on the host (core/sampling/loop.py).

On a GPU, ``.item()``, ``float(tensor)``, ``bool(tensor)`` and data-dependent shapes
(``nonzero``) make the CPU wait for the GPU, so it cannot queue the next step while this
one runs. They show up in the profiler as ``aten::_local_scalar_dense`` / ``aten::nonzero``
on any device, so this is checked on the CPU, for the samplers users pick most on three
families: no such op inside the loop's ``easel.sampling_step`` ranges, except inside the
diffusers scheduler's own ``step`` (``easel.scheduler_step``), which compares its sigmas,
kept on the CPU by diffusers for this reason (``self.sigmas.to("cpu")`` in
``set_timesteps``), and never a ``nonzero`` (the scheduler's search for its first index,
on device-resident timesteps).
"""

from __future__ import annotations

import pytest
from torch.profiler import ProfilerActivity, profile

from core.sampling.loop import SCHEDULER_RANGE, STEP_RANGE
from plugin_api.types import GenerationRequest

HOST_READS = {"aten::_local_scalar_dense", "aten::item", "aten::nonzero", "aten::is_nonzero"}


def host_reads_in_steps(prof) -> tuple[int, dict[str, int]]:
    """(number of steps, {op: count}) for host reads inside the steps, outside the
    scheduler's step except for nonzero."""
    steps, found = 0, {}
    for event in prof.events():
        if event.name == STEP_RANGE:
            steps += 1
        if event.name not in HOST_READS:
            continue
        ranges = []
        parent = event.cpu_parent
        while parent is not None:
            ranges.append(parent.name)
            parent = parent.cpu_parent
        if STEP_RANGE in ranges and (SCHEDULER_RANGE not in ranges or event.name == "aten::nonzero"):
            found[event.name] = found.get(event.name, 0) + 1
    return steps, found


@pytest.mark.parametrize(
    ("model", "sampler"),
    [
        ("tiny-sd15", "Euler"),
        ("tiny-sd15", "Euler a"),
        ("tiny-sd15", "DPM++ 2M Karras"),
        ("tiny-sdxl", "DPM++ 2M"),
        ("tiny-zimage", "Euler"),
    ],
)
def test_no_host_reads_inside_the_loop(make_host, model, sampler):
    from core.engine import Engine

    engine = Engine(make_host(preview_every=1000))  # previews copy to the host on purpose
    request = GenerationRequest(
        prompt="a red circle", seed=3, steps=4, width=64, height=64, model=model,
        sampler=sampler, save_images=False,
    )  # fmt: skip
    engine.generate(request)  # load and warm up outside the profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        engine.generate(request)
    steps, found = host_reads_in_steps(prof)
    assert steps == 4
    assert not found, f"{sampler}: host reads inside the sampling loop: {found}"
