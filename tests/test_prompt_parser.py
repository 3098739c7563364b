"""A1111 prompt syntax: emphasis, escapes, BREAK, 75-token chunks."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPTokenizer

from core.config import MODEL_CONFIGS_DIR
from core.families.clip_text import encode_chunks, tokenize_pair
from core.prompt_parser import parse_prompt_attention, tokenize_weighted


@pytest.fixture(scope="module")
def tokenizer():
    return CLIPTokenizer.from_pretrained(str(MODEL_CONFIGS_DIR / "clip_tokenizer"), model_max_length=77)


@pytest.mark.parametrize(
    ("text", "expected"),
    [  # A1111's own doctest cases
        ("normal text", [("normal text", 1.0)]),
        ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
        ("(unbalanced", [("unbalanced", 1.1)]),
        ("\\(literal\\]", [("(literal]", 1.0)]),
        ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
        (
            "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
            [
                ("a ", 1.0),
                ("house", 1.5730000000000004),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.4641000000000006),
                (".", 1.1),
            ],
        ),
        ("a BREAK b", [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]),
    ],
)
def test_parse_prompt_attention(text, expected):
    got = parse_prompt_attention(text)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected])


def test_chunks_are_bos_tokens_eos_padding(tokenizer):
    (chunk,) = tokenize_weighted(tokenizer, "a (red:1.5) circle")
    assert len(chunk.tokens) == len(chunk.weights) == 77
    assert chunk.tokens[0] == tokenizer.bos_token_id
    ids = tokenizer("a red circle", add_special_tokens=False)["input_ids"]
    assert chunk.tokens[1 : 1 + len(ids)] == ids
    assert chunk.tokens[1 + len(ids)] == tokenizer.eos_token_id
    assert chunk.weights[1 : 1 + len(ids)] == [1.0, 1.5, 1.0]


def test_long_prompts_and_break_make_more_chunks(tokenizer):
    long_prompt = " ".join(["cat"] * 100)
    assert len(tokenize_weighted(tokenizer, long_prompt)) == 2
    assert len(tokenize_weighted(tokenizer, "a cat BREAK a dog")) == 2
    positive, negative = tokenize_pair(tokenizer, long_prompt, "blurry")
    assert len(positive) == len(negative) == 2
    positive, negative = tokenize_pair(tokenizer, "cat", long_prompt)
    assert len(positive) == len(negative) == 2


def test_comma_moves_the_phrase_to_the_next_chunk(tokenizer):
    prompt = " ".join(["cat"] * 70) + ", " + " ".join(["dog"] * 10)
    first, second = tokenize_weighted(tokenizer, prompt)
    dog = tokenizer.convert_tokens_to_ids("dog</w>")
    assert dog not in first.tokens  # the whole phrase after the comma went on
    assert second.tokens[1:11] == [dog] * 10


def test_emphasis_restores_the_mean(engine):
    model = engine.models.get("tiny-sd15")
    tokenizer, encoder = model.components["tokenizer"], model.components["text_encoder"]
    with torch.inference_mode():
        plain = encode_chunks(encoder, tokenize_weighted(tokenizer, "red circle"), None, True).hidden
        weighted = encode_chunks(encoder, tokenize_weighted(tokenizer, "(red:1.5) circle"), None, True).hidden
    assert not torch.allclose(plain, weighted)
    assert torch.allclose(plain.mean(), weighted.mean(), atol=1e-6)


def test_fragments_of_equal_weight_merge_wherever_they_are():
    assert parse_prompt_attention("a (b) c (d)(e)") == [("a ", 1.0), ("b", 1.1), (" c ", 1.0), ("de", 1.1)]


def test_every_weight_outside_the_prompt_is_one_and_padding_is_the_pad_token(tokenizer):
    (chunk,) = tokenize_weighted(tokenizer, "a (red:1.5) circle")
    n = len(tokenizer("a red circle", add_special_tokens=False)["input_ids"])
    assert chunk.weights == [1.0, 1.0, 1.5, 1.0, 1.0] + [1.0] * (77 - n - 2)
    assert chunk.tokens[n + 1 :] == [tokenizer.eos_token_id] * (77 - n - 1)  # SD1.x pads with EOS
    # OpenCLIP's second SDXL tokenizer pads with "!" (id 0) after the EOS
    bang = CLIPTokenizer.from_pretrained(
        str(MODEL_CONFIGS_DIR / "clip_tokenizer"), model_max_length=77, pad_token="!"
    )
    (chunk,) = tokenize_weighted(bang, "a red circle")
    assert bang.pad_token_id == 0 != bang.eos_token_id
    assert chunk.tokens[n + 1] == bang.eos_token_id and chunk.tokens[n + 2 :] == [0] * (77 - n - 2)


def test_break_alone_and_a_trailing_break_make_one_chunk(tokenizer):
    empty = [tokenizer.bos_token_id, tokenizer.eos_token_id] + [tokenizer.eos_token_id] * 75
    for prompt in ("BREAK", "a cat BREAK"):
        chunks = tokenize_weighted(tokenizer, prompt)
        assert len(chunks) == 1, prompt
    assert tokenize_weighted(tokenizer, "BREAK")[0].tokens == empty
    assert [c.tokens for c in tokenize_weighted(tokenizer, "", min_chunks=0)] == [empty]
    assert len(tokenize_weighted(tokenizer, "cat", min_chunks=3)) == 3


def test_a_third_chunk_and_the_comma_backtrack_boundary(tokenizer):
    assert len(tokenize_weighted(tokenizer, " ".join(["cat"] * 200))) == 3
    dog = tokenizer.convert_tokens_to_ids("dog</w>")
    # the comma 20 tokens before the chunk's end: A1111 still moves the phrase (<= 20)
    first, second = tokenize_weighted(tokenizer, " ".join(["cat"] * 55) + ", " + " ".join(["dog"] * 30))
    assert dog not in first.tokens and second.tokens[1:31] == [dog] * 30
    # 21 tokens before the end: too far back, the chunk is filled up instead
    first, _ = tokenize_weighted(tokenizer, " ".join(["cat"] * 54) + ", " + " ".join(["dog"] * 30))
    assert first.tokens[1:76].count(dog) == 20


def test_an_empty_prompt_is_one_empty_fragment_of_weight_one():
    assert parse_prompt_attention("") == [("", 1.0)]


def test_a_tokenizer_without_a_pad_token_pads_with_eos():
    bare = CLIPTokenizer.from_pretrained(str(MODEL_CONFIGS_DIR / "clip_tokenizer"), model_max_length=77)
    bare.pad_token = None
    assert bare.pad_token_id is None
    (chunk,) = tokenize_weighted(bare, "cat")
    assert chunk.tokens[2:] == [bare.eos_token_id] * 75


class OneWordEmbedding:
    """An embedding finder (core.prompt_embeddings' protocol) for the single word ``dog``."""

    def __init__(self, tokenizer, count: int = 1) -> None:
        self.dog = tokenizer.convert_tokens_to_ids("dog</w>")
        self.vectors = torch.ones(count, 4)  # `count` vectors of width 4

    def find(self, tokens, position):
        return (self.vectors, 1) if tokens[position] == self.dog else None


def test_embeddings_move_with_the_phrase_after_the_comma(tokenizer):
    """The comma backtrack carries the embedding placed right after the comma into the next
    chunk (offset 0 there) and leaves the one before it where it was."""
    prompt = "dog " + " ".join(["cat"] * 54) + ", dog " + " ".join(["bird"] * 30)
    first, second = tokenize_weighted(tokenizer, prompt, embeddings=OneWordEmbedding(tokenizer))
    assert [at for at, _ in first.fixes] == [0] and [at for at, _ in second.fixes] == [0]
    assert first.tokens[1] == second.tokens[1] == 0  # the placeholder id under the vectors


@pytest.mark.parametrize(("cats", "chunk", "at"), [(72, 0, 72), (73, 1, 0)])
def test_a_multi_vector_embedding_never_straddles_a_chunk(tokenizer, cats, chunk, at):
    """3 vectors fit at offset 72 (72 + 3 = 75 tokens); at 73 they go to the next chunk."""
    prompt = " ".join(["cat"] * cats) + " dog"
    chunks = tokenize_weighted(tokenizer, prompt, embeddings=OneWordEmbedding(tokenizer, count=3))
    assert all(len(c.tokens) == len(c.weights) == 77 for c in chunks)
    assert [[a for a, _ in c.fixes] for c in chunks] == [
        [at] if i == chunk else [] for i in range(len(chunks))
    ]
    vectors = chunks[chunk].fixes[0][1]
    assert tuple(vectors.shape) == (3, 4)
    assert chunks[chunk].tokens[1 + at : 4 + at] == [0, 0, 0]
