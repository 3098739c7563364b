"""Shared fixtures: tiny models (built once per session), a models folder, host and engine.

tiny_sd15_dir / tiny_sdxl_dir / tiny_zimage_dir      diffusers folders
tiny_sd15_file / tiny_sdxl_file / tiny_zimage_file   single-file checkpoints (original
                                                     key layout) with a .config/ sidecar
models_dir    an A1111 models folder: Stable-diffusion/ holds all of the above as
              tiny-sd15, tiny-sd15-file, tiny-sdxl, tiny-sdxl-file, tiny-zimage, ...
host, engine  session-wide, data in a tmp folder, models from models_dir
make_host(**settings)  a fresh started Host on the same models (own data dir)
shipped_engine  an engine on the shipped models folder (demo model, LoRA, ControlNet...)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as core/__init__.py, before torch loads

from pathlib import Path

import pytest
import torch

from tests import tiny_models

# at most 2 threads; fewer if OMP_NUM_THREADS says so (on a shared, loaded machine two
# threads at low priority wait on each other at every parallel region, many times slower)
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1, int(os.environ.get("OMP_NUM_THREADS") or 2))))

# make mutation: mutmut runs these files from its copy in mutants/, and forks every mutant's
# pytest session from a server that has collected the tests once. Importing diffusers and
# its schedulers there (they pull in torch._dynamo and scipy.stats) saves every mutant
# those ~5 s; other pytest sessions import them when a test first needs them.
if Path(__file__).resolve().parent.parent.name == "mutants":
    import diffusers

    for _name in dir(diffusers):
        if _name.endswith("Scheduler") and not _name.startswith("Flax"):
            getattr(diffusers, _name)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """Where the session's tiny models are built: a fresh folder, or with
    EASEL_TINY_MODEL_CACHE (``make mutation``: every mutant starts a pytest session, and
    building the six models took 9 of its 13 seconds) a folder there named by the hash of
    the code that builds them, reused by later sessions."""
    cache = os.environ.get("EASEL_TINY_MODEL_CACHE")
    if not cache:
        return tmp_path_factory.mktemp("tiny-models")
    builders = hashlib.sha256()
    here = Path(__file__).parent
    for source in (
        Path(__file__),
        Path(tiny_models.__file__),
        here / "flux_files.py",
        here / "qwen_image_files.py",
    ):
        builders.update(source.read_bytes())
    root = Path(cache) / builders.hexdigest()[:16]
    root.mkdir(parents=True, exist_ok=True)
    return root


def build_once(path: Path, build: Callable[[], Path]) -> Path:
    """``build()`` unless a finished build of ``path`` is in ``tiny_root`` already (only
    with EASEL_TINY_MODEL_CACHE: a fresh folder holds none). The marker is written last, so
    an interrupted build is rebuilt."""
    done = path.with_name(path.name + ".built")
    if done.exists():
        return path
    built = build()
    done.touch()
    return built


@pytest.fixture(scope="session")
def tiny_sd15_dir(tiny_root) -> Path:
    path = tiny_root / "sd15" / "tiny-sd15"
    return build_once(path, lambda: tiny_models.make_tiny_sd15(path))


@pytest.fixture(scope="session")
def tiny_sd15_file(tiny_root, tiny_sd15_dir) -> Path:
    def build() -> Path:
        components = tiny_models.tiny_sd15_components()
        path = tiny_models.write_single_file(
            tiny_root / "sd15" / "tiny-sd15-file.safetensors", tiny_models.sd15_to_ldm(components)
        )
        tiny_models.write_config_sidecar(tiny_sd15_dir, path)
        return path

    return build_once(tiny_root / "sd15" / "tiny-sd15-file.safetensors", build)


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tiny_root) -> Path:
    path = tiny_root / "sdxl" / "tiny-sdxl"
    return build_once(path, lambda: tiny_models.make_tiny_sdxl(path))


@pytest.fixture(scope="session")
def tiny_sdxl_file(tiny_root, tiny_sdxl_dir) -> Path:
    def build() -> Path:
        components = tiny_models.tiny_sdxl_components()
        path = tiny_models.write_single_file(
            tiny_root / "sdxl" / "tiny-sdxl-file.safetensors", tiny_models.sdxl_to_ldm(components)
        )
        tiny_models.write_config_sidecar(tiny_sdxl_dir, path)
        return path

    return build_once(tiny_root / "sdxl" / "tiny-sdxl-file.safetensors", build)


@pytest.fixture(scope="session")
def tiny_zimage_dir(tiny_root) -> Path:
    path = tiny_root / "zimage" / "tiny-zimage"
    return build_once(path, lambda: tiny_models.make_tiny_zimage(path))


@pytest.fixture(scope="session")
def tiny_zimage_file(tiny_root, tiny_zimage_dir) -> Path:
    def build() -> Path:
        components = tiny_models.tiny_zimage_components()
        path = tiny_models.write_single_file(
            tiny_root / "zimage" / "tiny-zimage-file.safetensors",
            tiny_models.zimage_to_single_file(components),
        )
        tiny_models.write_config_sidecar(tiny_zimage_dir, path, keep_weights=True)
        return path

    return build_once(tiny_root / "zimage" / "tiny-zimage-file.safetensors", build)


MODEL_FIXTURES = (
    "tiny_sd15_dir",
    "tiny_sd15_file",
    "tiny_sdxl_dir",
    "tiny_sdxl_file",
    "tiny_zimage_dir",
    "tiny_zimage_file",
)


def _link(target: Path, link: Path) -> None:
    link.symlink_to(target.resolve(), target_is_directory=target.is_dir())
    sidecar = target.with_name(target.stem + ".config")
    if target.is_file() and sidecar.is_dir():
        link.with_name(link.stem + ".config").symlink_to(sidecar.resolve(), target_is_directory=True)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, request) -> Path:
    """An A1111 models folder whose Stable-diffusion/ links every tiny model."""
    root = tmp_path_factory.mktemp("models")
    checkpoints = root / "Stable-diffusion"
    checkpoints.mkdir()
    for fixture in MODEL_FIXTURES:
        target = request.getfixturevalue(fixture)
        _link(target, checkpoints / target.name)
    return root


@pytest.fixture(scope="session")
def make_host(models_dir, tmp_path_factory):
    from core.config import Settings
    from core.host import Host

    def make(**overrides) -> Host:
        overrides.setdefault("data_dir", tmp_path_factory.mktemp("data"))
        overrides.setdefault("models_dir", models_dir)
        overrides.setdefault("safe_mode", True)  # bundled extensions are tested on their own
        overrides.setdefault("device", "cpu")
        return Host(Settings(**overrides)).start()

    return make


@pytest.fixture(scope="session")
def host(make_host):
    return make_host()


@pytest.fixture(scope="session")
def engine(host):
    from core.engine import Engine

    return Engine(host)


@pytest.fixture(scope="session")
def shipped_engine(tmp_path_factory):
    """The shipped models folder (the demo model and its LoRA, ControlNet, upscaler); not
    ``make_host``, which would build every tiny model first."""
    from core.config import SHIPPED_MODELS_DIR, Settings
    from core.engine import Engine
    from core.host import Host

    settings = Settings(
        models_dir=SHIPPED_MODELS_DIR, data_dir=tmp_path_factory.mktemp("data"), safe_mode=True, device="cpu"
    )
    host = Host(settings).start()
    yield Engine(host)
    host.stop()


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL server for the session (tests/pg_cluster.py). Skipped, loudly,
    only when the server binaries are missing; `make test` installs them and sets
    EASEL_REQUIRE_POSTGRES=1, which turns that skip into a failure."""
    import warnings

    from tests.pg_cluster import MISSING, Cluster, server_bin_dir

    bin_dir = server_bin_dir()
    if bin_dir is None:
        if os.environ.get("EASEL_REQUIRE_POSTGRES") == "1":
            pytest.fail(MISSING)
        warnings.warn(MISSING, stacklevel=1)
        pytest.skip(MISSING)
    cluster = Cluster(bin_dir).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(pg_cluster) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return pg_cluster.new_database()
