"""Key-term scoring for the Chinese prompt test set (shared by the tests and by hand)."""

from __future__ import annotations

import re
from pathlib import Path

TEST_SET = Path(__file__).resolve().parent / "data" / "zh_prompts.tsv"


def load_test_set(path: Path = TEST_SET) -> list[tuple[str, list[str]]]:
    cases = []
    for line in path.read_text("utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        prompt, keys = line.split("\t")
        cases.append((prompt, [k.strip() for k in keys.split("|") if k.strip()]))
    return cases


def stem(word: str) -> str:
    """A crude English stem so that simple inflections match: cats/cat, running/run,
    flowers/flower, leaves/leaf, smiling/smile."""
    word = word.lower().strip("'\".,;:!?()[]")
    for suffix, replacement in (("ies", "y"), ("ves", "f"), ("ing", ""), ("es", ""), ("ed", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: len(word) - len(suffix)] + replacement
            break
    word = word.rstrip("e")
    if len(word) > 3 and word[-1] == word[-2]:  # running -> runn -> run
        word = word[:-1]
    return word


def words(text: str) -> list[str]:
    return [stem(w) for w in re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", text.lower())]


def key_present(key: str, translation: str) -> bool:
    """A key term is present when all its words occur, inflected or not, within one
    comma-separated part of the translation ("cherry tree" is found in "girl under
    cherry blossom tree"), or as a contiguous phrase anywhere."""
    key_words = words(key)
    if not key_words:
        return True
    all_words = words(translation)
    n = len(key_words)
    if any(all_words[i : i + n] == key_words for i in range(len(all_words) - n + 1)):
        return True
    return any(set(key_words) <= set(words(part)) for part in translation.split(","))


def score(translate, cases) -> tuple[float, list[tuple[str, str, list[str]]]]:
    """Share of key terms present, and the misses as (prompt, translation, missing)."""
    total = found = 0
    misses = []
    for prompt, keys in cases:
        english = translate(prompt)
        missing = [k for k in keys if not key_present(k, english)]
        total += len(keys)
        found += len(keys) - len(missing)
        if missing:
            misses.append((prompt, english, missing))
    return found / total, misses
