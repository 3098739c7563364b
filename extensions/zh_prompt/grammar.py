"""Word order: turn a segmented Chinese phrase into an English prompt phrase.

Chinese puts modifiers before the noun ("蓝色背景上的红色圆形": blue background - on -
的 - red circle); English puts place phrases and verb phrases after it ("red circle on a
blue background"). The rules here are the few that matter for image prompts:

* ``X 的 Y``: a place or verb modifier follows its noun ("girl under a cherry tree",
  "girl wearing a kimono"); adjectives, colours and possessors stay in front.
* ``在 X 上`` / ``X 上``: a locative word after a noun phrase becomes a preposition in
  front of it ("on the table").
* Positions in the frame ("左上角") become "at the top left".
* Leading measure words ("一只", "一个") become an article that stays first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# locative word -> English preposition
LOCATIVES: dict[str, str] = {
    "上": "on",
    "上面": "on",
    "之上": "on",
    "上边": "on",
    "顶上": "on top of",
    "上方": "above",
    "下": "under",
    "下面": "under",
    "之下": "under",
    "底下": "under",
    "下方": "below",
    "里": "in",
    "里面": "in",
    "里边": "in",
    "内": "in",
    "中": "in",
    "之中": "in",
    "当中": "in",
    "前": "in front of",
    "前面": "in front of",
    "前方": "in front of",
    "后": "behind",
    "后面": "behind",
    "后方": "behind",
    "旁": "beside",
    "旁边": "beside",
    "边": "beside",
    "身边": "beside",
    "外": "outside",
    "外面": "outside",
    "周围": "around",
    "四周": "around",
    "对面": "across from",
    "之间": "between",
}
PREPOSITION_ZAI = "在"
LINKER_DE = frozenset({"的", "之"})
ARTICLE_WORDS = re.compile(r"^(a|an|two|three|four|five|many|some|a pair of|a group of|a \w+ of)$")
PLURAL_ARTICLES = re.compile(r"^(two|three|four|five|many|some|a pair of|a group of|a pile of|several)$")
PLACE_PHRASE = re.compile(r"^(on|in|under|inside|above|below|beside|behind|at|near|outside) ")


@dataclass
class Token:
    """One segmented word with its translation. ``category`` comes from the lexicon
    ("verb", "position", "drop"...), "verb"/"place" from CEDICT, "foreign" for text that
    was already English."""

    chinese: str
    english: str
    category: str = ""


@dataclass
class Phrase:
    articles: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    kind: str = "plain"  # plain | verbal | place

    def text(self) -> str:
        return " ".join(w for w in [*self.articles, *self.words] if w)


def _position_phrase(english: str) -> str:
    return f"in the {english}" if english in {"center", "middle"} else f"at the {english}"


def _is_article(token: Token) -> bool:
    return token.category == "drop" and bool(ARTICLE_WORDS.match(token.english))


def render_group(tokens: list[Token]) -> Phrase:
    """A run of tokens without 的: places and positions become preposition phrases."""
    phrase = Phrase()
    index = 0
    while index < len(tokens) and _is_article(tokens[index]):
        phrase.articles.append(tokens[index].english)
        index += 1
    items: list[tuple[str, str]] = []  # (english, kind) with kind noun | verb | place
    noun_start = 0  # where the current noun phrase begins in items
    while index < len(tokens):
        token = tokens[index]
        if token.chinese == PREPOSITION_ZAI and token.category != "foreign":
            index, place = _zai_phrase(tokens, index + 1)
            if place:
                items.append((place, "place"))
            noun_start = len(items)
            continue
        preposition = LOCATIVES.get(token.chinese) if token.category != "foreign" else None
        if preposition is not None and any(kind == "noun" for _, kind in items[noun_start:]):
            noun = " ".join(text for text, _ in items[noun_start:])
            del items[noun_start:]
            items.append((f"{preposition} {noun}", "place"))
            noun_start = len(items)
        elif token.category == "position":
            items.append((_position_phrase(token.english), "place"))
            noun_start = len(items)
        elif token.category in {"verb", "cedict-verb"}:
            items.append((token.english, "verb"))
            noun_start = len(items)
        elif token.category == "place" and PLACE_PHRASE.match(token.english):
            items.append((token.english, "place"))
            noun_start = len(items)
        elif token.english:
            # "和", "一只" inside a phrase: links between nouns, not part of one
            items.append((token.english, "link" if token.category == "drop" else "noun"))
        index += 1
    if phrase.articles and PLURAL_ARTICLES.match(phrase.articles[-1]):
        # "两只猫" -> "two cats": the last word of the first noun phrase
        first_other = next((i for i, (_, kind) in enumerate(items) if kind != "noun"), len(items))
        if first_other > 0:
            text, kind = items[first_other - 1]
            items[first_other - 1] = (pluralise(text), kind)
    phrase.words = [text for text, _ in items]
    kinds = {kind for _, kind in items} - {"link"}
    if "verb" in kinds:
        phrase.kind = "verbal"
    elif kinds == {"place"}:
        phrase.kind = "place"
    return phrase


def _zai_phrase(tokens: list[Token], index: int) -> tuple[int, str]:
    """``在 X [locative]`` from ``index`` (just after 在): (next index, English)."""
    noun: list[Token] = []
    while index < len(tokens):
        token = tokens[index]
        if token.chinese in LOCATIVES or token.chinese == PREPOSITION_ZAI:
            break
        if token.category in {"verb", "cedict-verb"} and noun:
            break  # "在海边奔跑": the place ends where the action starts
        if token.chinese in LINKER_DE:
            break
        noun.append(token)
        index += 1
    words = [t.english for t in noun if t.english and t.category != "position"]
    positions = [t.english for t in noun if t.category == "position"]
    if index < len(tokens) and tokens[index].chinese in LOCATIVES:
        preposition = LOCATIVES[tokens[index].chinese]
        index += 1
    elif positions and not words:
        return index, _position_phrase(" ".join(positions))
    else:
        preposition = "in"
    if not words and not positions:
        return index, ""
    target = " ".join(words + positions)
    return index, f"{preposition} {target}"


def combine(modifier: Phrase, head: Phrase) -> Phrase:
    """``modifier 的 head``."""
    articles = modifier.articles or head.articles
    if modifier.kind in {"place", "verbal"}:
        words = head.words + modifier.words
    else:
        words = modifier.words + head.words
    return Phrase(articles, words, head.kind)


def render_clause(tokens: list[Token]) -> str:
    """One clause (text between commas) in English word order."""
    groups: list[list[Token]] = [[]]
    for token in tokens:
        if token.chinese in LINKER_DE and token.category != "foreign":
            groups.append([])
        else:
            groups[-1].append(token)
    groups = [g for g in groups if g]
    if not groups:
        return ""
    phrase = render_group(groups[0])
    for group in groups[1:]:
        phrase = combine(phrase, render_group(group))
    return fix_articles(phrase.text())


def pluralise(phrase: str) -> str:
    """English plural of a noun phrase's last word, by the regular rules (enough for
    "cats", "horses", "butterflies"; irregular and uncountable words are left alone)."""
    head, _, word = phrase.rpartition(" ")
    if not word.isalpha() or not word.islower() or word.endswith("s") or word in _UNCOUNTED:
        return phrase
    if word.endswith(("x", "ch", "sh")):
        word += "es"
    elif word.endswith("y") and word[-2:-1] not in "aeiou":
        word = word[:-1] + "ies"
    else:
        word = _IRREGULAR.get(word, word + "s")
    return f"{head} {word}" if head else word


_UNCOUNTED = frozenset({"sheep", "fish", "deer", "hair", "grass", "snow", "rain", "water", "bamboo", "sushi"})
_IRREGULAR = {
    "man": "men",
    "woman": "women",
    "child": "children",
    "mouse": "mice",
    "leaf": "leaves",
    "wolf": "wolves",
}


def fix_articles(text: str) -> str:
    """ "a orange cat" -> "an orange cat"."""
    return re.sub(r"\ba (?=[aeiouAEIOU])", "an ", text)
