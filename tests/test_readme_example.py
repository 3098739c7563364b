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
