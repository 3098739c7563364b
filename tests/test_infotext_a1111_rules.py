"""The small rules of AUTOMATIC1111's infotext that the fixtures do not reach, each as A1111
1.10 has it (``modules/processing.py`` ``create_infotext``, ``modules/infotext_utils.py``
``quote``/``unquote``/``parse_generation_parameters``). Found by mutation testing
(docs/mutation.md): every expected value here is written out from A1111's code, not taken
from Easel's output.
"""

from __future__ import annotations

from core.saving.infotext import build_infotext, parse_infotext, quote, unquote


def test_a_value_with_only_a_newline_is_json_quoted():
    # A1111's quote: a comma, a newline *or* a colon makes the value a JSON string
    assert quote("two\nlines") == '"two\\nlines"'
    text = build_infotext("p", "", {"Steps": 2, "Note": "two\nlines", "Seed": 1})
    assert text == 'p\nSteps: 2, Note: "two\\nlines", Seed: 1'
    assert parse_infotext(text)["Note"] == "two\nlines"


def test_quoted_values_keep_non_ascii_text_as_is():
    # json.dumps(text, ensure_ascii=False): "模型", not "\u6a21\u578b"
    assert quote("模型, v2") == '"模型, v2"'
    text = build_infotext("猫", "", {"Steps": 2, "Model": "模型: v2", "Seed": 1})
    assert text == '猫\nSteps: 2, Model: "模型: v2", Seed: 1'


def test_a_none_value_in_the_middle_leaves_out_only_that_field():
    text = build_infotext("p", "", {"Steps": 20, "Hires upscale": None, "Seed": 1, "Size": "64x64"})
    assert text == "p\nSteps: 20, Seed: 1, Size: 64x64"


def test_a_field_whose_value_is_its_own_name_is_written_bare():
    # create_infotext: `k if k == v else f"{k}: {quote(v)}"`
    text = build_infotext("p", "", {"Steps": 20, "Tiling": "Tiling", "Seed": 1})
    assert text == "p\nSteps: 20, Tiling, Seed: 1"


def test_unquote_only_decodes_a_value_quoted_at_both_ends():
    assert unquote("") == ""
    assert unquote('"') == '"'
    assert unquote('"a, b"') == "a, b"
    assert unquote('"a" ') == '"a" '  # json.loads would accept it; A1111 checks text[-1] first
    assert unquote('"not json') == '"not json'
    assert unquote('"bad \\q escape"') == '"bad \\q escape"'  # json.loads fails: kept as written


def test_a_quoted_value_followed_by_a_space_is_kept_verbatim():
    # The quoted form needs a comma right after the closing quote; otherwise the value is
    # everything up to the next comma, and unquote leaves it alone (not both ends quoted)
    parsed = parse_infotext('p\nSteps: 20, Note: "a" , Seed: 1')
    assert parsed["Note"] == '"a" ' and parsed["Seed"] == "1"


def test_an_empty_value_leaves_the_field_out():
    # A1111's `v[0] == '"'` raises IndexError on an empty value; the except skips the field
    parsed = parse_infotext("p\nSteps: 20, Hires prompt: , Seed: 1, Sampler: Euler")
    assert parsed == {
        "Prompt": "p",
        "Negative prompt": "",
        "Steps": "20",
        "Seed": "1",
        "Sampler": "Euler",
    }


def test_a_size_field_gives_only_its_two_halves():
    # A1111: `if m is not None: res[k-1], res[k-2] = ... else: res[k] = v`
    parsed = parse_infotext("p\nSteps: 20, Size: 512x768, Hires resize: 1024x1536, Seed: 1")
    assert parsed == {
        "Prompt": "p",
        "Negative prompt": "",
        "Steps": "20",
        "Size-1": "512",
        "Size-2": "768",
        "Hires resize-1": "1024",
        "Hires resize-2": "1536",
        "Seed": "1",
    }
