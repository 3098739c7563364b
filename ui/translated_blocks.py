"""Make the built WebUI translatable without touching how its tabs are written.

Core tabs and extension tabs write plain English (``gr.Slider(label="Weight")``), like
A1111's. Gradio's frontend translates only i18n keys in labels, info texts, placeholders,
button texts and Markdown, so after the Blocks are built ``translate_blocks`` replaces
each such English text that some localization table translates by an i18n key (the
English text itself). Choices and tab titles need nothing: the frontend looks plain
strings up as keys. Table headers are translated by ``TABLE_HEADERS_JS`` in the page.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.i18n import I18nData

from ui.localization import Localizations

TEXT_PROPERTIES = ("label", "info", "placeholder")
# components whose ``value`` is a text shown as is (not data a user typed)
VALUE_IS_TEXT = (gr.Button, gr.DownloadButton, gr.UploadButton, gr.Markdown)
# a Dataframe with the class easel-translate-col-N shows words of the UI (a status, a
# setting's name) in its column N: a cell that is exactly a table's key is translated
TRANSLATE_COLUMN_PREFIX = "easel-translate-col-"


def translated_columns(*indexes: int) -> list[str]:
    """``elem_classes`` for a Dataframe whose columns ``indexes`` hold UI words."""
    return [f"{TRANSLATE_COLUMN_PREFIX}{index}" for index in indexes]


def _translatable(text: Any, localizations: Localizations) -> bool:
    return (
        isinstance(text, str)
        and "__i18n__" not in text
        and "{" not in text  # the frontend reads translations as ICU messages
        and localizations.has(text)
    )


def translate_blocks(blocks: gr.Blocks, localizations: Localizations) -> int:
    """Turn every translated plain text of ``blocks`` into an i18n key; returns how many."""
    changed = 0
    for block in list(blocks.blocks.values()):
        for name in TEXT_PROPERTIES:
            text = getattr(block, name, None)
            if _translatable(text, localizations):
                setattr(block, name, I18nData(text))
                changed += 1
        if isinstance(block, VALUE_IS_TEXT):
            text = block.value
            if _translatable(text, localizations):
                block.value = str(I18nData(text))  # the serialized key, as Markdown keeps it
                changed += 1
    return changed


# Gradio shows a Dataframe's headers and cells as they are; this translates the headers
# (and the cells of columns marked by ``translated_columns``) in the page, from the same
# tables the frontend got, for the language Gradio picked (navigator.language, see
# ui/language.py).
TABLE_HEADERS_JS = """
() => {
  const all = (window.gradio_config && window.gradio_config.i18n_translations) || {};
  const language = navigator.language || 'en';
  const table = all[language] || all[language.split('-')[0]];
  if (!table) return;
  const own = Object.prototype.hasOwnProperty;
  // header cells, and the body cells (virtual rows) of the columns marked PREFIX<n>
  const cells = () => {
    const found = [...document.querySelectorAll('th')];
    for (const table of document.querySelectorAll('[class*="PREFIX"]')) {
      for (const name of table.classList) {
        if (name.startsWith('PREFIX')) {
          const column = name.slice('PREFIX'.length);
          found.push(...table.querySelectorAll(`.body-cell[data-col="${column}"]`));
        }
      }
    }
    return found;
  };
  const translate = () => {
    for (const cell of cells()) {
      const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const key = node.nodeValue.trim();
        if (key && own.call(table, key)) node.nodeValue = node.nodeValue.replace(key, table[key]);
      }
    }
  };
  let pending = false;
  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; translate(); });
  };
  translate();
  new MutationObserver(schedule).observe(document.body, { childList: true, subtree: true, characterData: true });
}
""".replace("PREFIX", TRANSLATE_COLUMN_PREFIX)
