"""The dictionary translator on its own: quality on a hand-written test set, prompt
syntax preservation, traditional characters, modes and the user lexicon."""

from __future__ import annotations

import os
import re

import pytest

from extensions.zh_prompt.dictionary import best_gloss, clean_sense
from extensions.zh_prompt.syntax import CJK
from extensions.zh_prompt.translator import Translator
from tests.zh_prompt_scoring import key_present, load_test_set, score

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def translator() -> Translator:
    t = Translator()
    t.load()
    return t


def test_key_terms_of_the_test_set(translator):
    cases = load_test_set()
    assert len(cases) >= 60
    share, misses = score(lambda p: translator.translate(p).text, cases)
    print(f"\nzh_prompt key-term score: {share:.1%} on {len(cases)} prompts")
    for prompt, english, missing in misses:
        print(f"  {prompt} -> {english}  (missing: {', '.join(missing)})")
    assert share >= 0.90
    for prompt, _ in cases:
        english = translator.translate(prompt).text
        assert not CJK.search(english), f"Chinese left in {english!r} (from {prompt!r})"


def test_scoring_matches_inflections_but_not_other_words():
    assert key_present("cherry tree", "girl under cherry blossom tree")
    assert key_present("running", "a dog runs on grass")
    assert key_present("flowers", "a white rabbit in flower")
    assert not key_present("cat", "a dog on grass")
    assert not key_present("blue sky", "blue sea, white sky")


def test_the_demo_caption_pattern(translator):
    assert translator.translate("蓝色背景上的红色圆形").text == "red circle on blue background"
    assert translator.translate("左上角的小绿色星星，白色背景").text == (
        "small green star at the top left, white background"
    )


def test_weights_editing_lora_break_and_english_survive(translator):
    prompt = "masterpiece, (红色:1.2), [猫:狗:0.5], <lora:水彩风:0.8> BREAK 1girl, 长发"
    english = translator.translate(prompt).text
    assert english == "masterpiece, (red:1.2), [cat:dog:0.5], <lora:水彩风:0.8> BREAK 1girl, long hair"


def test_lora_tag_kept_byte_exact_even_traditional(translator):
    prompt = "<lora:賽博朋克_v2:0.65>賽博朋克城市，（霓虹燈：1.3）"
    english = translator.translate(prompt).text
    assert english.startswith("<lora:賽博朋克_v2:0.65>")
    assert "cyberpunk city" in english
    assert "(neon lights:1.3)" in english


def test_escapes_alternation_and_nested_weights(translator):
    english = translator.translate(r"\(猫\), [红色|蓝色] ((花朵)), [雪:0.3]").text
    assert english == r"\(cat\), [red|blue] ((flowers)), [snow:0.3]"


def test_traditional_is_converted_first(translator):
    assert translator.translate("藍色背景上的紅色圓形").text == "red circle on blue background"


def test_idioms_are_one_unit(translator):
    assert translator.segment("阳光明媚的早晨") == ["阳光明媚", "的", "早晨"]
    # a CC-CEDICT chengyu, not in the curated lexicon
    assert "画龙点睛" in translator.segment("画龙点睛的一笔")


def test_english_only_prompt_is_untouched(translator):
    prompt = "a cat,  (dog:1.1) , BREAK <lora:x:1>"
    assert translator.translate(prompt).text == prompt
    assert translator.apply(prompt, "translate").text == prompt


def test_modes(translator):
    prompt = "赛博朋克城市，高清"
    assert translator.apply(prompt, "translate").text == "cyberpunk city, high definition"
    assert (
        translator.apply(prompt, "translate_keep").text
        == "赛博朋克城市，高清, cyberpunk city, high definition"
    )
    assert translator.apply(prompt, "augment").text == "赛博朋克城市，高清, cyberpunk, high definition"
    assert translator.apply(prompt, "off").text == prompt
    with pytest.raises(ValueError, match="mode"):
        translator.apply(prompt, "shout")


def test_translate_keep_does_not_repeat_lora_tags(translator):
    result = translator.apply("<lora:水彩风:0.8>水彩，猫", "translate_keep").text
    assert result.count("<lora:") == 1
    assert result.endswith("watercolor, cat")


def test_augment_without_style_words_changes_nothing(translator):
    assert translator.apply("一只猫", "augment").text == "一只猫"


def test_negative_prompt_vocabulary(translator):
    english = translator.translate("低质量，模糊，畸形，多余的手指，水印").text
    assert english == "low quality, blurry, deformed, extra fingers, watermark"


def test_cedict_gloss_choice():
    assert best_gloss(["CL:隻|只[zhi1]", "cat"]) == ("cat", False)
    assert best_gloss(["surname Hua", "flower"]) == ("flower", False)
    assert best_gloss(["to ride (an animal or bike)", "to sit astride"]) == ("ride", True)
    assert clean_sense("variant of 龍|龙[long2]") is None
    assert best_gloss(["Mid-Autumn Festival on 15th of 8th lunar month"]) == ("Mid-Autumn Festival", False)


def test_user_lexicon_outranks_and_reloads(tmp_path):
    lexicon = tmp_path / "user_lexicon.tsv"
    t = Translator(user_lexicon_path=lexicon)
    assert t.translate("水彩，小黄人").text.startswith("watercolor, ")
    lexicon.write_text("水彩\taquarelle\tstyle\n小黄人\tminion\n", "utf-8")
    assert t.translate("水彩，小黄人").text == "aquarelle, minion"
    lexicon.write_text("# emptied\n", "utf-8")
    os.utime(lexicon, ns=(1, 1))  # a different stamp even on a coarse-clock file system
    assert t.translate("水彩").text == "watercolor"


def test_malformed_user_lexicon_lines_are_reported_not_fatal(tmp_path):
    lexicon = tmp_path / "user_lexicon.tsv"
    lexicon.write_text("没有制表符\n猫咪\t中文\n狗狗\tdoggo\n", "utf-8")
    t = Translator(user_lexicon_path=lexicon)
    assert t.translate("狗狗").text == "doggo"
    assert len(t.problems) == 2 and all("user_lexicon.tsv:" in p for p in t.problems)


def test_unknown_characters_are_dropped_and_reported(translator):
    result = translator.translate("猫\U0002a6a5")  # a CJK extension-B character
    assert result.text == "cat"
    assert result.unknown == ["\U0002a6a5"]
    assert not re.search(CJK, result.text)


def test_measure_words_become_articles_and_plurals(translator):
    assert translator.translate("两只猫和一只狗").text == "two cats and a dog"
    assert translator.translate("草原上的一群马").text == "a group of horses on grassland"
    assert translator.translate("一只橘猫").text == "an orange cat"


def test_place_and_verb_modifiers_follow_their_noun(translator):
    assert translator.translate("桌子上的苹果").text == "apple on table"
    assert translator.translate("穿着和服的女孩").text == "girl wearing kimono"
    assert translator.translate("女孩坐在沙发上").text == "girl sitting on sofa"
