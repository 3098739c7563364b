"""The extra-networks card browser under the prompt (A1111/Forge's "Extra networks"):
one tab of cards per registered extra network (LoRA, Textual Inversion, whatever an
extension registers with ``register_extra_networks`` and ``list_cards``) and one of
checkpoints.

A card shows its name, the family it was made for and the preview image beside its file
(``<name>.png`` / ``<name>.preview.png``). Clicking a network's card adds its prompt text
to the prompt, as A1111 does, with the weight of the slider when the text is a
``<tag:name:weight>`` tag; clicking it again takes it out. Clicking a checkpoint selects
that model. Search filters by name; Refresh lists the files again.

Everything a card shows is escaped: names and paths come from files on disk. Previews are
read through the image gate (size checked before decoding) and sent as small JPEG data
URLs, so no route serves the models folder.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from plugin_api.extra_networks import preview_beside
from ui import choices
from ui.i18n import t

log = logging.getLogger("easel.ui")

CHECKPOINTS = "checkpoints"  # the network name of the checkpoint cards
THUMB_SIDE = 128
# <lora:name:0.8>: the last number is the weight the slider sets
WEIGHTED_TAG = re.compile(r"^<([^:<>]+):(.+):(-?\d+(?:\.\d+)?)>$")

CARDS_CSS = """
.easel-cards { display: flex; flex-wrap: wrap; gap: 8px; max-height: 340px; overflow-y: auto; }
.easel-card { width: 132px; border: 1px solid var(--border-color-primary, #d1d5db); border-radius: 8px;
  cursor: pointer; overflow: hidden; background: var(--block-background-fill, #fff); }
.easel-card:hover { border-color: var(--color-accent, #f97316); }
.easel-card .thumb { width: 132px; height: 132px; display: flex; align-items: center;
  justify-content: center; background: var(--neutral-100, #f3f4f6); font-size: 40px; color: #9ca3af; }
.easel-card .thumb img { width: 100%; height: 100%; object-fit: cover; }
.easel-card .name { font-size: 0.85em; padding: 4px 6px 0; word-break: break-all; }
.easel-card .family { font-size: 0.75em; padding: 0 6px 4px; color: #6b7280; }
.easel-card.problem { opacity: 0.5; }
"""

# Event delegation on the component itself: it survives every re-render of the cards.
CARDS_JS = """
element.addEventListener('click', (event) => {
  const card = event.target.closest('[data-card-name]');
  if (card) trigger('click', {network: card.dataset.cardNetwork, name: card.dataset.cardName});
});
"""


@dataclass
class Card:
    network: str
    name: str
    prompt: str
    family: str
    preview: str | None
    note: str = ""


@dataclass
class CardBrowser:
    tabs: list[tuple[str, gr.HTML]]  # (network, its cards)
    search: gr.Textbox
    weight: gr.Slider
    refresh: gr.Button


class Thumbnails:
    """Small JPEG data URLs of preview images, cached by (path, size, mtime)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, int, float], str] = {}

    def data_url(self, path: str | None) -> str | None:
        if not path:
            return None
        try:
            stat = Path(path).stat()
        except OSError:
            return None
        key = (path, stat.st_size, stat.st_mtime)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        url = _thumbnail(path)
        with self._lock:
            self._cache[key] = url or ""
        return url


def _thumbnail(path: str) -> str | None:
    from plugin_api.errors import InvalidRequest
    from plugin_api.images import open_image

    try:
        image = open_image(path, "preview")  # the size is checked before decoding
        image = image.convert("RGB")
        image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    except (InvalidRequest, OSError, ValueError) as exc:
        log.info("card preview %s not shown: %s", path, exc)
        return None
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


THUMBNAILS = Thumbnails()


def network_titles(host: Any) -> list[tuple[str, str]]:
    """(network, tab title) of every extra network that lists cards, in registration order."""
    titles = []
    for spec in getattr(host, "extra_networks", []):
        if getattr(spec, "list_cards", None) is not None:
            titles.append((spec.name, spec.title or spec.name))
    return titles


def list_cards(host: Any, service: Any) -> dict[str, list[Card]]:
    """Every card by network; the checkpoints last."""
    cards: dict[str, list[Card]] = {name: [] for name, _ in network_titles(host)}
    for card in host.extra_network_cards():
        cards.setdefault(card["network"], []).append(
            Card(
                network=card["network"],
                name=str(card["name"]),
                prompt=str(card["prompt"]),
                family=str(card.get("family") or "unknown"),
                preview=card.get("preview"),
                note=str(card.get("description") or ""),
            )
        )
    cards[CHECKPOINTS] = checkpoint_cards(service)
    return cards


def checkpoint_cards(service: Any) -> list[Card]:
    engine = choices.find_engine(service)
    if engine is None:
        return []
    try:
        models = list(engine.models.list())
    except Exception:  # an unreadable models folder must not stop the UI
        log.exception("could not list models")
        return []
    return [
        Card(
            network=CHECKPOINTS,
            name=m.name,
            prompt="",
            family=str(getattr(m, "family", "") or "unknown"),
            preview=preview_beside(m.path) if getattr(m, "path", None) else None,
        )
        for m in models
    ]


def render_cards(cards: list[Card], query: str = "") -> str:
    """The cards matching ``query`` (case-insensitive, in the name) as HTML."""
    wanted = (query or "").strip().casefold()
    shown = [c for c in cards if wanted in c.name.casefold()]
    if not shown:
        return '<div class="easel-cards easel-cards-empty">—</div>'
    parts = ['<div class="easel-cards">']
    for card in shown:
        url = THUMBNAILS.data_url(card.preview)
        thumb = f'<img src="{url}" alt="">' if url else html.escape(card.name[:1].upper() or "?")
        css = "easel-card problem" if card.note.startswith("refused") else "easel-card"
        parts.append(
            f'<div class="{css}" data-card-network="{html.escape(card.network)}" '
            f'data-card-name="{html.escape(card.name)}" title="{html.escape(card.note or card.name)}">'
            f'<div class="thumb">{thumb}</div><div class="name">{html.escape(card.name)}</div>'
            f'<div class="family">{html.escape(card.family)}</div></div>'
        )
    parts.append("</div>")
    return "".join(parts)


def with_weight(prompt: str, weight: float) -> str:
    """``<lora:name:1>`` with the slider's weight; other texts (an embedding's name) as they are."""
    match = WEIGHTED_TAG.match(prompt)
    if match is None:
        return prompt
    return f"<{match.group(1)}:{match.group(2)}:{float(weight):g}>"


def toggle_in_prompt(prompt: str, text: str) -> str:
    """A1111's click on a card: add the text at the end of the prompt, or take it out when
    the prompt already holds it (for a tag: with any weight)."""
    prompt = prompt or ""
    match = WEIGHTED_TAG.match(text)
    if match is not None:
        same = re.compile(
            r"\s*,?\s*<" + re.escape(match.group(1)) + ":" + re.escape(match.group(2)) + r":[^<>]*>"
        )
    else:
        same = re.compile(r"(?:^|\s*,\s*|\s+)" + re.escape(text) + r"(?=$|[\s,])")
    if text and same.search(prompt):
        return same.sub("", prompt, count=1).strip(" ,")
    if not prompt.strip():
        return text
    separator = " " if match is not None or prompt.rstrip().endswith(",") else ", "
    return prompt.rstrip() + separator + text


def find_card(cards: dict[str, list[Card]], network: str, name: str) -> Card | None:
    return next((c for c in cards.get(network, []) if c.name == name), None)


def build_card_browser(prefix: str, host: Any, service: Any) -> CardBrowser:
    """The accordion of card tabs; wire it with ``wire_card_browser`` once the prompt and
    the model dropdown exist."""
    cards = list_cards(host, service)
    titles = [*network_titles(host), (CHECKPOINTS, t("cards.checkpoints"))]
    tabs = []
    with gr.Accordion(t("cards.title"), open=False, elem_id=f"{prefix}_cards"):
        with gr.Row():
            search = gr.Textbox(
                label=t("cards.search"), elem_id=f"{prefix}_cards_search", max_lines=1, scale=4
            )
            weight = gr.Slider(
                -2.0, 2.0, value=1.0, step=0.05, label=t("cards.weight"), elem_id=f"{prefix}_cards_weight",
                scale=3,
            )  # fmt: skip
            refresh = gr.Button(t("cards.refresh"), elem_id=f"{prefix}_cards_refresh", size="sm", scale=0)
        with gr.Tabs():
            for network, title in titles:
                with gr.Tab(title, elem_id=f"{prefix}_cards_tab_{network}"):
                    tabs.append(
                        (
                            network,
                            gr.HTML(
                                render_cards(cards.get(network, [])),
                                elem_id=f"{prefix}_cards_{network}",
                                js_on_load=CARDS_JS,
                                css_template=CARDS_CSS,
                            ),
                        )
                    )
    return CardBrowser(tabs, search, weight, refresh)


def wire_card_browser(
    browser: CardBrowser, prompt: gr.Textbox, model: gr.Dropdown, host: Any, service: Any
) -> None:
    listing = {"cards": list_cards(host, service)}  # refreshed by the Refresh button

    def rerender(query: str) -> list[str]:
        return [render_cards(listing["cards"].get(network, []), query) for network, _ in browser.tabs]

    def refresh(query: str) -> list[str]:
        listing["cards"] = list_cards(host, service)
        return rerender(query)

    def on_network_click(current: str, weight: float, evt: gr.EventData) -> Any:
        data = getattr(evt, "_data", None) or {}
        card = find_card(listing["cards"], str(data.get("network", "")), str(data.get("name", "")))
        if card is None or not card.prompt:
            return gr.update()
        return toggle_in_prompt(current, with_weight(card.prompt, weight))

    def on_checkpoint_click(current: str | None, evt: gr.EventData) -> Any:
        data = getattr(evt, "_data", None) or {}
        name = str(data.get("name", ""))
        if name not in choices.model_names(service):
            return gr.update()
        return gr.update(value=name)

    outputs = [component for _, component in browser.tabs]
    browser.search.change(rerender, inputs=[browser.search], outputs=outputs, show_progress="hidden")
    browser.refresh.click(refresh, inputs=[browser.search], outputs=outputs, show_progress="hidden")
    for network, component in browser.tabs:
        if network == CHECKPOINTS:
            component.click(on_checkpoint_click, inputs=[model], outputs=[model], show_progress="hidden")
        else:
            component.click(
                on_network_click, inputs=[prompt, browser.weight], outputs=[prompt], show_progress="hidden"
            )
