"""``register_scripts`` (plugin API 1.9) through the real host and engine, with a script
of the test's own (not the bundled X/Y/Z plot): a request naming it runs it; each of its
generations is the same as that request made alone, saved as usual; progress counts
generations as A1111's job_no/job_count; arguments arrive by name from a positional
list; refusals name ``script_name`` / ``script_args``; a cancel stops it.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from core.engine import Engine
from core.results import CancelToken
from plugin_api import GenerationRequest, InvalidRequest, ScriptSpec, hookimpl
from plugin_api.testing import start_host


def _run(request, args, ctx):
    """Two generations: the request's seed, then ``offset`` more; the second image first."""
    first = ctx.generate(request, part=0, parts=2)
    second = ctx.generate(
        GenerationRequest(**{**vars(request), "seed": request.seed + args.get("offset", 1)}), 1, 2
    )
    result = type(first)(images=[*second.images, *first.images], seeds=[*second.seeds, *first.seeds],
                         infotexts=[*second.infotexts, *first.infotexts], paths=[*second.paths, *first.paths])  # fmt: skip
    result.interrupted = first.interrupted or second.interrupted
    return result


def _validate(request, args, ctx):
    if args.get("offset", 1) == 0:
        raise InvalidRequest("script_args.offset", "must not be 0")
    ctx.check(request)


def _make_extension() -> types.ModuleType:
    module = types.ModuleType("pair_script")

    @hookimpl
    def register_scripts(register):
        register(ScriptSpec(name="Seed pair", run=_run, validate=_validate, arg_names=("offset",)))

    module.register_scripts = register_scripts
    return module


@pytest.fixture(scope="module")
def engine(tmp_path_factory, tiny_sd15_dir):
    host = start_host([_make_extension()], tmp_path_factory.mktemp("scripts"), model_dir=tiny_sd15_dir)
    yield Engine(host)
    host.stop()


def _request(**kw):
    base = {"prompt": "a red circle", "seed": 10, "steps": 2, "width": 64, "height": 64, "sampler": "Euler",
            "model": "tiny-sd15"}  # fmt: skip
    return GenerationRequest(**{**base, **kw})


def test_a_registered_script_runs_its_generations_as_if_alone(engine):
    events = []
    result = engine.generate(
        _request(script_name="seed PAIR", script_args=[3]), job_id="job0", on_progress=events.append
    )
    alone = [engine.generate(_request(seed=seed)) for seed in (13, 10)]
    assert result.seeds == [13, 10]
    for mine, reference in zip(result.images, alone, strict=True):
        assert np.array_equal(np.asarray(mine), np.asarray(reference.images[0]))
    assert len(result.paths) == 2 and all(path.endswith(".png") for path in result.paths)
    assert {(e.batch_index, e.batch_count) for e in events} == {(0, 2), (1, 2)}
    # the journals of its generations are gone once the script is done
    assert not list(engine.journal.folder.glob("job0-*.json"))


def test_refusals_name_the_script_fields(engine):
    with pytest.raises(InvalidRequest) as unknown:
        engine.validate(_request(script_name="No such script"))
    assert unknown.value.field == "script_name" and "Seed pair" in unknown.value.message
    with pytest.raises(InvalidRequest) as too_many:
        engine.validate(_request(script_name="Seed pair", script_args=[1, 2]))
    assert too_many.value.field == "script_args"
    with pytest.raises(InvalidRequest) as named:
        engine.validate(_request(script_name="Seed pair", script_args={"offset": 0}))
    assert named.value.field == "script_args.offset"
    with pytest.raises(InvalidRequest) as checked:  # the script checks its generations
        engine.validate(_request(script_name="Seed pair", sampler="No such sampler"))
    assert checked.value.field == "sampler"


def test_a_cancel_stops_the_script(engine):
    cancel = CancelToken()
    cancel.interrupt()
    result = engine.generate(_request(script_name="Seed pair"), cancel=cancel)
    assert result.interrupted and result.images == []
