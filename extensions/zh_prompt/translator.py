"""Offline, deterministic Chinese -> English prompt translation.

Pipeline for each translatable piece of a prompt (see ``syntax``): traditional characters
become simplified (OpenCC), jieba segments the Chinese with a vocabulary restricted to
words that have a translation, each word is looked up (user lexicon, then the curated
lexicon, then CC-CEDICT) and ``grammar`` puts the English in prompt order.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from extensions.zh_prompt import dictionary, grammar, syntax
from extensions.zh_prompt.dictionary import Entry

log = logging.getLogger("easel.zh_prompt")

MODES = ("translate", "translate_keep", "augment", "off")
HINT_CATEGORIES = frozenset({"style", "quality", "lighting", "composition", "camera"})
_CJK_OR_NOT = re.compile(f"([{syntax.CJK_CHARS}]+)")


@dataclass
class Translation:
    """A translated prompt and what the translator could not translate."""

    text: str
    unknown: list[str] = field(default_factory=list)


class Translator:
    """Thread-safe; loads its dictionaries on first use (or on ``load()``)."""

    def __init__(self, user_lexicon_path: Path | None = None, cache_dir: Path | None = None) -> None:
        self.user_lexicon_path = user_lexicon_path
        self.cache_dir = cache_dir
        self.problems: list[str] = []  # malformed user lexicon lines, for the UI
        self._lock = threading.RLock()
        self._base: dictionary.BaseData | None = None
        self._user: dict[str, Entry] = {}
        self._user_stamp: tuple[int, int] | None = None
        self._tokenizer = None
        self._to_simplified = None

    # --- loading ---------------------------------------------------------------------

    def load(self) -> float:
        """Load the dictionaries now; returns the seconds it took."""
        started = time.perf_counter()
        self._ready()
        return time.perf_counter() - started

    def set_user_lexicon_path(self, path: Path | None) -> None:
        with self._lock:
            if path != self.user_lexicon_path:
                self.user_lexicon_path = path
                self._user_stamp = None
                self._tokenizer = None

    def _ready(self) -> None:
        with self._lock:
            if self._base is None:
                self._base = dictionary.load_base_data(self.cache_dir)
                self._to_simplified = _make_t2s()
            stamp = self._user_lexicon_stamp()
            if self._tokenizer is None or stamp != self._user_stamp:
                self._load_user_lexicon(stamp)

    def _user_lexicon_stamp(self) -> tuple[int, int] | None:
        if self.user_lexicon_path is None:
            return None
        try:
            stat = os.stat(self.user_lexicon_path)
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def _load_user_lexicon(self, stamp: tuple[int, int] | None) -> None:
        import jieba  # imported here: it is only needed once a prompt is translated

        assert self._base is not None
        if stamp is not None and self.user_lexicon_path is not None:
            self._user, self.problems = dictionary.load_lexicon(self.user_lexicon_path)
        else:
            self._user, self.problems = {}, []
        for problem in self.problems:
            log.warning("zh_prompt: %s", problem)
        freq = self._base.freq
        total = self._base.total
        if self._user:  # a copy, so that removing a user word removes it from segmentation
            freq = dict(freq)
            for word in self._user:
                added = max(freq.get(word, 0), dictionary.LEXICON_FREQ)
                total += added - freq.get(word, 0)
                freq[word] = added
                for end in range(1, len(word)):
                    freq.setdefault(word[:end], 0)
        tokenizer = jieba.Tokenizer()
        tokenizer.FREQ, tokenizer.total, tokenizer.initialized = freq, total, True
        self._tokenizer = tokenizer
        self._user_stamp = stamp

    # --- words -----------------------------------------------------------------------

    def lookup(self, word: str) -> grammar.Token | None:
        """The translation of one word: user lexicon, curated lexicon, then CC-CEDICT."""
        assert self._base is not None
        entry = self._user.get(word) or self._base.curated.get(word)
        if entry is not None:
            return grammar.Token(word, entry.english, entry.category)
        gloss = self._base.cedict.get(word)
        if gloss is None:
            return None
        english, is_verb = gloss
        if is_verb:
            category = "cedict-verb"
        elif dictionary.PLACE_GLOSS.match(english):
            category = "place"
        else:
            category = ""
        return grammar.Token(word, english, category)

    def to_simplified(self, text: str) -> str:
        self._ready()
        return self._to_simplified(text) if self._to_simplified else text

    def segment(self, chinese: str) -> list[str]:
        """jieba's segmentation of a run of Chinese characters."""
        self._ready()
        assert self._tokenizer is not None
        return [w for w in self._tokenizer.cut(chinese, HMM=False) if w.strip()]

    def tokens(self, text: str, unknown: list[str] | None = None) -> list[grammar.Token]:
        """Text (Chinese mixed with anything else) as translated tokens. Text that is not
        Chinese becomes a "foreign" token kept verbatim."""
        self._ready()
        result: list[grammar.Token] = []
        for part in _CJK_OR_NOT.split(text):
            if not part.strip():
                continue
            if not syntax.has_cjk(part):
                result.append(grammar.Token(part.strip(), part.strip(), "foreign"))
                continue
            for word in self.segment(self.to_simplified(part)):
                token = self.lookup(word)
                if token is None:  # a character no dictionary knows: dropped, reported
                    if unknown is not None:
                        unknown.append(word)
                    continue
                result.append(token)
        return result

    # --- prompts ---------------------------------------------------------------------

    @staticmethod
    def needs_work(prompt: str) -> bool:
        """Only prompts with Chinese characters are touched."""
        return bool(prompt) and syntax.has_cjk(prompt)

    def translate_text(self, text: str, unknown: list[str] | None = None) -> str:
        """One translatable piece (no brackets or commas inside) in English."""
        return grammar.render_clause(self.tokens(text, unknown))

    def translate(self, prompt: str) -> Translation:
        """The whole prompt with every Chinese piece in English and its syntax kept."""
        if not syntax.has_cjk(prompt):
            return Translation(prompt)
        unknown: list[str] = []
        parts = []
        for piece in syntax.split_prompt(prompt):
            if not piece.translatable:
                parts.append(piece.text)
                continue
            core = piece.text.strip()
            lead = piece.text[: len(piece.text) - len(piece.text.lstrip())]
            trail = piece.text[len(piece.text.rstrip()) :]
            parts.append(lead + self.translate_text(core, unknown) + trail)
        return Translation(syntax.tidy_commas(syntax.join_pieces(parts)), unknown)

    def hints(self, prompt: str) -> list[str]:
        """English for the style, quality, lighting and camera words in a prompt."""
        found: list[str] = []
        lowered = prompt.lower()
        for piece in syntax.split_prompt(prompt, normalise_punctuation=False):
            if not piece.translatable:
                continue
            for token in self.tokens(piece.text):
                if (
                    token.category in HINT_CATEGORIES
                    and token.english
                    and token.english not in found
                    and token.english.lower() not in lowered
                ):
                    found.append(token.english)
        return found

    def apply(self, prompt: str, mode: str, english: str | None = None) -> Translation:
        """The prompt as ``mode`` makes it; prompts without Chinese are left alone.

        :param english: a translation made elsewhere (the neural backend); the
            dictionary translates when it is None.
        """
        if mode not in MODES:
            raise ValueError(f"zh_prompt mode must be one of {', '.join(MODES)}, not {mode!r}")
        if mode == "off" or not syntax.has_cjk(prompt):
            return Translation(prompt)
        if mode == "augment":
            hints = self.hints(prompt)
            if not hints:
                return Translation(prompt)
            return Translation(_append(prompt, ", ".join(hints)))
        translation = Translation(english) if english is not None else self.translate(prompt)
        if mode == "translate_keep":
            kept = syntax.strip_tags(translation.text)
            return Translation(_append(prompt, kept), translation.unknown)
        return translation


def _append(prompt: str, addition: str) -> str:
    stripped = prompt.rstrip()
    if not addition:
        return prompt
    if not stripped:
        return addition
    separator = " " if stripped.endswith((",", "，")) else ", "
    return f"{stripped}{separator}{addition}"


def _make_t2s():
    """OpenCC's traditional -> simplified converter, or None when it cannot load (then
    traditional characters that differ from their simplified form go untranslated)."""
    try:
        import opencc

        converter = opencc.OpenCC("t2s")
    except Exception as exc:  # a broken optional wheel must not break translation
        log.warning("zh_prompt: OpenCC unavailable, traditional text is not converted: %s", exc)
        return None
    return converter.convert
