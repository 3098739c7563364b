"""Build the CLIP tokenizer files (vocab.json + merges.txt) that Easel ships.

Nothing may be downloaded at run time, so the CLIP BPE vocabulary is turned into the
two files `transformers.CLIPTokenizer` reads and committed under
`core/model_configs/clip_tokenizer/`. The source is `bpe_simple_vocab_16e6.txt.gz`, the
file the `open-clip-torch` wheel carries (`pip download --no-deps open-clip-torch`, then
unzip `open_clip/bpe_simple_vocab_16e6.txt.gz`). The vocabulary is built the way CLIP's
own simple tokenizer builds it, so ids match open_clip's.

    python tools/build_clip_tokenizer.py path/to/bpe_simple_vocab_16e6.txt.gz
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parents[1] / "core" / "model_configs" / "clip_tokenizer"
MERGE_COUNT = 49152 - 256 - 2  # CLIP keeps the first 48894 merges after the header


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable-unicode table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def build(bpe_gz: Path, out_dir: Path = OUT_DIR) -> None:
    with gzip.open(bpe_gz, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : MERGE_COUNT + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab += [token + "</w>" for token in vocab]
    vocab += ["".join(pair) for pair in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(
        json.dumps({token: i for i, token in enumerate(vocab)}, ensure_ascii=False), "utf-8"
    )
    merges_text = "#version: 0.2\n" + "\n".join(" ".join(pair) for pair in merges) + "\n"
    (out_dir / "merges.txt").write_text(merges_text, "utf-8")
    print(f"wrote {len(vocab)} tokens and {len(merges)} merges to {out_dir}")


if __name__ == "__main__":
    build(Path(sys.argv[1]))
