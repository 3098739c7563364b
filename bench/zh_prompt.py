"""Benchmark of the zh_prompt dictionary translator; prints JSON.

    python -m bench.zh_prompt

Targets: dictionary load < 2 s (from the cache, in a fresh process), translating a
500-character prompt < 50 ms once loaded. Not a test: nothing here asserts timings.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT_500 = (
    "最佳质量，杰作，高清，一个美丽的女孩站在樱花树下，长发，微笑，穿着白色连衣裙，"
    "阳光明媚，柔光，特写，浅景深，蓝色背景上的红色圆形，左上角的小绿色星星，"
    "赛博朋克城市夜景，霓虹灯，下雨，电影感，(红色:1.2)，[猫:狗:0.5]，<lora:水彩风:0.8>，"
    "一只橘猫躺在窗台上晒太阳，温暖的阳光，水墨画，竹子，留白，中国风，"
)


def _fresh_process_load(cache_dir: Path) -> float:
    code = (
        "import time; t = time.perf_counter();"
        "from extensions.zh_prompt.translator import Translator;"
        f"Translator(cache_dir=__import__('pathlib').Path({str(cache_dir)!r})).load();"
        "print(time.perf_counter() - t)"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from extensions.zh_prompt.translator import Translator

    prompt = (PROMPT_500 * 10)[:500]
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(tmp)
        started = time.perf_counter()
        translator = Translator(cache_dir=cache_dir)
        translator.load()
        build_s = time.perf_counter() - started  # imports + parsing + writing the cache
        cached_loads = [_fresh_process_load(cache_dir) for _ in range(3)]
    started = time.perf_counter()
    translator.translate(prompt)
    first_s = time.perf_counter() - started
    runs = []
    for _ in range(20):
        started = time.perf_counter()
        translator.translate(prompt)
        runs.append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "dictionary_build_no_cache_s": round(build_s, 3),
                "dictionary_load_from_cache_fresh_process_s": round(statistics.median(cached_loads), 3),
                "dictionary_load_target_s": 2.0,
                "prompt_chars": len(prompt),
                "translate_first_call_s": round(first_s, 4),
                "translate_500_chars_median_ms": round(statistics.median(runs) * 1000, 2),
                "translate_500_chars_max_ms": round(max(runs) * 1000, 2),
                "translate_target_ms": 50,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
