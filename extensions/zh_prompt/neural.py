"""Optional neural translation with a local MarianMT / NLLB model folder.

Used only when the setting ``zh_prompt.model_dir`` names a folder; loaded with
``local_files_only=True`` (nothing is ever downloaded). Any failure raises, and the
caller falls back to the dictionary translator.
"""

from __future__ import annotations

import threading
from pathlib import Path

from extensions.zh_prompt import syntax

_lock = threading.Lock()
_loaded: dict[str, tuple[object, object]] = {}


class NeuralUnavailable(RuntimeError):
    """The configured model folder cannot be used (the message says why)."""


def _load(folder: Path) -> tuple[object, object]:
    key = str(folder)
    with _lock:
        if key in _loaded:
            return _loaded[key]
        if not (folder / "config.json").is_file():
            raise NeuralUnavailable(f"{folder}: no translation model here (config.json missing)")
        try:
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModelForSeq2SeqLM.from_pretrained(folder, local_files_only=True).eval()
        except Exception as exc:
            raise NeuralUnavailable(f"{folder}: cannot load the model ({type(exc).__name__}: {exc})") from exc
        _loaded[key] = (tokenizer, model)
        return tokenizer, model


def _generate(tokenizer, model, texts: list[str]) -> list[str]:
    import torch

    kwargs = {}
    # NLLB-style multilingual models need the source and target languages
    if hasattr(tokenizer, "src_lang") and "zho_Hans" in getattr(tokenizer, "additional_special_tokens", []):
        tokenizer.src_lang = "zho_Hans"
        kwargs["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids("eng_Latn")
    batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=256)
    with torch.inference_mode():
        output = model.generate(**batch, max_new_tokens=256, num_beams=1, do_sample=False, **kwargs)
    return [t.strip() for t in tokenizer.batch_decode(output, skip_special_tokens=True)]


def translate_prompt(prompt: str, folder: Path) -> str:
    """Translate the Chinese pieces of ``prompt`` with the model in ``folder``; the
    prompt syntax around them is kept, as in the dictionary translator."""
    tokenizer, model = _load(folder)
    pieces = syntax.split_prompt(prompt)
    texts = [p.text.strip() for p in pieces if p.translatable]
    if not texts:
        return prompt
    english = iter(_generate(tokenizer, model, texts))
    parts = []
    for piece in pieces:
        if not piece.translatable:
            parts.append(piece.text)
            continue
        lead = piece.text[: len(piece.text) - len(piece.text.lstrip())]
        trail = piece.text[len(piece.text.rstrip()) :]
        parts.append(lead + next(english).rstrip(".") + trail)
    result = syntax.tidy_commas(syntax.join_pieces(parts))
    if syntax.has_cjk(syntax.strip_tags(result)):
        raise NeuralUnavailable(f"{folder}: the model left Chinese in its output: {result!r}")
    return result
