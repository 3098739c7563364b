"""The README's example extension works as the README says."""

import re
from pathlib import Path

import gradio as gr

from core.config import Settings
from core.host import Host
from plugin_api import GenerationContext, GenerationRequest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text("utf-8")
    marker = text.index("README example extension")
    return re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)


def test_readme_commands_are_the_makefile_targets():
    text = README.read_text("utf-8")
    assert "make serve" in text and "make test" in text
    makefile = (README.parent / "Makefile").read_text("utf-8")
    assert re.search(r"^serve:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (README.parent / ".ci" / "run").read_text("utf-8")


def test_readme_example_extension_transforms_prompts_and_adds_a_tab(tmp_path):
    source = readme_example()
    assert 15 <= len(source.strip().splitlines()) <= 30
    ext_dir = tmp_path / "exts"
    ext_dir.mkdir()
    (ext_dir / "kitty.py").write_text(source, "utf-8")
    host = Host(Settings.from_env(data_dir=tmp_path / "data", extension_dirs=[ext_dir])).start()
    assert host.extensions.records["kitty"].state == "loaded"

    request = GenerationRequest(prompt="a kitty and a doggo")
    ctx = GenerationContext(request=request, original_prompt=request.prompt, original_negative_prompt="")
    host.generation_hooks.transform_prompt(request, ctx)
    assert request.prompt == "a cat and a dog"

    # bundled extensions (zh_prompt) contribute tabs too; the example's own is "Kitty"
    [tab] = [t for e, t in host.ui_tabs() if e == "kitty"]
    assert tab.title == "Kitty"
    with gr.Blocks() as blocks, gr.Tab(tab.title):
        tab.build()
    kinds = [type(block).__name__ for block in blocks.blocks.values()]
    assert "Markdown" in kinds and "JSON" in kinds


def test_readme_example_changes_the_prompt_that_reaches_the_sampler(tmp_path, make_host):
    import numpy as np

    from core.config import BUNDLED_EXTENSION_NAMES
    from core.engine import Engine

    ext_dir = tmp_path / "exts"
    ext_dir.mkdir()
    (ext_dir / "kitty.py").write_text(readme_example(), "utf-8")
    host = make_host(
        extension_dirs=[ext_dir], safe_mode=False, disabled_extensions=set(BUNDLED_EXTENSION_NAMES)
    )
    assert [(ext, tab.title) for ext, tab in host.ui_tabs()] == [("kitty", "Kitty")]
    engine = Engine(host)

    def generate(prompt):
        request = GenerationRequest(
            prompt=prompt, seed=3, steps=2, width=64, height=64, model="tiny-sd15", save_images=False
        )
        return engine.generate(request)

    through_extension = generate("a kitty")
    assert through_extension.prompt == "a cat" and through_extension.original_prompt == "a kitty"
    direct = generate("a cat")
    assert np.array_equal(np.asarray(through_extension.images[0]), np.asarray(direct.images[0]))
