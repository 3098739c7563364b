"""Does the model follow position words, or the initial noise?

    python -m tools.demo_model.position_probe [--model DIR] [--seeds 12]

Generates "a large red circle <position> on a blue background" for the same seeds with four
position words and prints the judged positions. A model that follows the words changes
the position with the word; one that follows the noise gives the same column for every
word. The last line is JSON: the fraction of seeds whose judged position depends on the word
and the fraction that lands where the word says.
"""

from __future__ import annotations

import argparse
import json

import torch

from .common import MODEL_DIR
from .evaluate import load_pipeline, pipeline_batch_fn
from .judge import judge

WORDS = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}


def probe(pipe, seeds: list[int]) -> dict:
    generate = pipeline_batch_fn(pipe)
    table = {}
    for position, words in WORDS.items():
        images = generate([f"a large red circle {words} on a blue background"] * len(seeds), seeds)
        table[position] = [judge(image).position for image in images]
    columns = list(zip(*table.values(), strict=True))
    varies = sum(len(set(column)) > 1 for column in columns) / len(seeds)
    right = sum(p == position for position, got in table.items() for p in got) / (len(seeds) * len(WORDS))
    return {"table": table, "position_varies_with_word": varies, "position_right": right}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(MODEL_DIR))
    ap.add_argument("--seeds", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(1)
    result = probe(load_pipeline(args.model), list(range(100, 100 + args.seeds)))
    for position, got in result["table"].items():
        print(f"{position:>7}: {' '.join((g or '-').replace(' ', '-') for g in got)}")
    print(json.dumps({k: v for k, v in result.items() if k != "table"}))


if __name__ == "__main__":
    main()
