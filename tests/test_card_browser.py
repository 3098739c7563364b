"""The extra-networks card browser's pieces: cards from a real host's extensions
(LoRA, embeddings, a test extension's own network), previews beside the files, A1111's
click (add the tag at the end, click again to take it out), and escaping."""

from __future__ import annotations

import textwrap
from types import SimpleNamespace

import pytest
from PIL import Image

from ui.card_browser import CHECKPOINTS, list_cards, render_cards, toggle_in_prompt, with_weight

NETWORK = textwrap.dedent(
    """
    from plugin_api import hookimpl
    from plugin_api.extra_networks import ExtraNetworkCard, ExtraNetworkSpec

    @hookimpl
    def register_extra_networks(register):
        register(ExtraNetworkSpec(
            name="hypernet", activate=lambda ctx, params: None, title="Hypernetworks",
            list_cards=lambda: [ExtraNetworkCard(name='<b>"x"</b>', prompt="<hypernet:x:1>", family="sd15")],
        ))
    """
)


@pytest.fixture(scope="module")
def cards_host(tmp_path_factory):
    """A host with the bundled extensions and a test one; no checkpoints are needed."""
    from core.config import Settings
    from core.host import Host

    scratch = tmp_path_factory.mktemp("cards")
    (scratch / "extensions").mkdir()
    (scratch / "extensions" / "hypernet.py").write_text(NETWORK)
    settings = Settings(
        data_dir=scratch / "data", models_dir=scratch / "models", extension_dirs=[scratch / "extensions"],
        safe_mode=False, device="cpu",
    )  # fmt: skip
    started = Host(settings).start()
    yield started
    started.stop()


def test_every_registered_network_lists_cards_and_checkpoints_come_last(cards_host):
    cards = list_cards(cards_host, service=None)
    assert list(cards)[-1] == CHECKPOINTS
    assert {"lora", "hypernet"} <= set(cards)
    lora = {card.name: card for card in cards["lora"]}
    assert lora["easel-outline"].prompt == "<lora:easel-outline:1>" and lora["easel-outline"].family == "sd15"
    assert cards["hypernet"][0].prompt == "<hypernet:x:1>"


def test_cards_are_escaped_and_previews_are_inline_thumbnails(cards_host, tmp_path):
    html = render_cards(list_cards(cards_host, service=None)["hypernet"])
    assert "<b>" not in html and "&lt;b&gt;&quot;x&quot;&lt;/b&gt;" in html
    preview = tmp_path / "style.png"
    Image.new("RGB", (300, 200), (0, 128, 255)).save(preview)
    card = SimpleNamespace(network="lora", name="style", prompt="<lora:style:1>", family="sdxl",
                           preview=str(preview), note="")  # fmt: skip
    html = render_cards([card])
    assert 'data-card-name="style"' in html and 'src="data:image/jpeg;base64,' in html
    assert str(tmp_path) not in html  # no server path reaches the page
    assert render_cards([card], query="STY") == html and "style" not in render_cards([card], query="other")
    # a preview that is not an image shows the initial instead
    preview.write_bytes(b"not a png")
    assert "data:image" not in render_cards([card])


@pytest.mark.parametrize(
    ("prompt", "text", "expected"),
    [
        ("", "<lora:a:0.7>", "<lora:a:0.7>"),
        ("a house", "<lora:a:0.7>", "a house <lora:a:0.7>"),
        ("a house <lora:a:1>", "<lora:a:0.7>", "a house"),  # again: out, whatever its weight
        ("a house <lora:a:1>, red", "<lora:a:0.7>", "a house, red"),
        ("a house <lora:ab:1>", "<lora:a:1>", "a house <lora:ab:1> <lora:a:1>"),  # another LoRA stays
        ("a house", "my-embedding", "a house, my-embedding"),
        ("a house, my-embedding", "my-embedding", "a house"),
        ("a house,", "my-embedding", "a house, my-embedding"),
    ],
)
def test_a_click_adds_the_text_and_a_second_takes_it_out(prompt, text, expected):
    assert toggle_in_prompt(prompt, text) == expected


def test_the_slider_sets_the_weight_of_a_tag_only():
    assert with_weight("<lora:style:1>", 0.65) == "<lora:style:0.65>"
    assert with_weight("<lora:sub/dir name:1>", -1) == "<lora:sub/dir name:-1>"
    assert with_weight("my-embedding", 0.5) == "my-embedding"


def test_a_checkpoint_card_selects_that_model_and_nothing_else(engine, tmp_path):
    """Through the wired Blocks: a real engine's models as cards; a click on one selects
    it, a forged name (not a listed model) changes nothing."""
    import gradio as gr

    from core.jobs import JobService, SqliteJobQueue
    from ui.card_browser import build_card_browser, wire_card_browser

    queue = SqliteJobQueue(tmp_path / "queue.db")
    service = JobService(queue, runner=engine.generate, transient_dir=tmp_path / "t", engine=engine)
    names = [m.name for m in engine.models.list()]
    with gr.Blocks() as blocks:
        prompt, model = gr.Textbox(), gr.Dropdown(choices=names, value=names[0])
        browser = build_card_browser("t2i", engine.host, service)
        wire_card_browser(browser, prompt, model, engine.host, service)
    html = dict(browser.tabs)["checkpoints"].value
    assert all(f'data-card-name="{name}"' in html for name in names) and len(names) >= 2
    click = next(f.fn for f in blocks.fns.values() if f.fn.__name__ == "on_checkpoint_click")
    assert (
        click(names[0], gr.EventData(None, {"network": "checkpoints", "name": names[1]}))["value"] == names[1]
    )
    assert click(names[0], gr.EventData(None, {"network": "checkpoints", "name": "../x"})) == gr.update()
    queue.close()
