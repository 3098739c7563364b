"""A tiny BLIP captioning model folder built from a config (random weights), as
``save_pretrained`` writes one into ``models/BLIP/<folder>``: nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

WORDS = ["a", "red", "circle", "on", "blue", "background", "square", "green"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]


def build_tiny_blip(folder: Path) -> Path:
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {word: index for index, word in enumerate(SPECIAL + WORDS)}
    # BLIP's tokenizer is BERT's with "[DEC]" as its start-of-caption token
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True, bos_token="[DEC]")
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    size = len(SPECIAL) + len(WORDS)
    config = BlipConfig(
        text_config={
            "vocab_size": size,
            "hidden_size": 32,
            "encoder_hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 37,
            "max_position_embeddings": 64,
            "bos_token_id": SPECIAL.index("[DEC]"),
            "pad_token_id": 0,
            "sep_token_id": SPECIAL.index("[SEP]"),
            "eos_token_id": SPECIAL.index("[SEP]"),
        },
        vision_config={
            "hidden_size": 32,
            "image_size": 32,
            "patch_size": 8,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 37,
        },
        projection_dim=32,
    )
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config)
    with torch.no_grad():
        # random weights would caption with anything, end-of-text included: favour "red"
        # so the caption the route returns is a known, non-empty word
        bias = model.text_decoder.cls.predictions.bias
        bias.zero_()
        bias[len(SPECIAL) + WORDS.index("red")] = 50.0
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
