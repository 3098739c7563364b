"""The shipped T5 v1.1 tokenizer (core/model_configs/t5_tokenizer, provenance in
tools/extract_t5_tokenizer.py) gives the reference tokenizer's ids.

The first expectation is published: elixir-nx/bumblebee's T5 tokenizer test
(test/bumblebee/text/t5_tokenizer_test.exs, made with Hugging Face's t5 tokenizer, the
vocabulary T5 v1.1 and FLUX.1's text_encoder_2 share). The other two pin T5's conventions:
the same task prefix ids, and sentinels counting down from 32099 (``<extra_id_0>``), as
T5's span-corruption examples use them.
"""

from __future__ import annotations

import pytest

from core.config import MODEL_CONFIGS_DIR

EXPECTED = [
    ("translate English to German: How old are you?", [13959, 1566, 12, 2968, 10, 571, 625, 33, 25, 58, 1]),
    (
        "translate English to German: The house is wonderful.",
        [13959, 1566, 12, 2968, 10, 37, 629, 19, 1627, 5, 1],
    ),
    ("The <extra_id_0> walks in <extra_id_1> park", [37, 32099, 10681, 16, 32098, 2447, 1]),
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from core.models.manager import materialize_config_dir

    configs = materialize_config_dir(MODEL_CONFIGS_DIR / "flux-dev", tmp_path_factory.mktemp("configs"))
    return AutoTokenizer.from_pretrained(str(configs / "tokenizer_2"), local_files_only=True)


@pytest.mark.parametrize(("text", "ids"), EXPECTED)
def test_ids_match_the_reference_tokenizer(tokenizer, text, ids):
    assert tokenizer(text).input_ids == ids


def test_vocabulary_and_padding_as_flux_pipeline_uses_them(tokenizer):
    assert len(tokenizer) == 32100  # 32000 pieces + 100 sentinels (the model's 32128 rows pad it)
    padded = tokenizer(["a cat"], padding="max_length", max_length=512, truncation=True).input_ids[0]
    assert len(padded) == 512 and padded[-1] == tokenizer.pad_token_id == 0
    assert tokenizer.eos_token_id == 1
