"""The WebUI's "Step cache" accordion: its values become the request's ``cache``, and an
infotext's ``Cache:`` fills it again (PNG Info, send to)."""

from __future__ import annotations

import pytest

from core.errors import RequestError
from plugin_api.types import GenerationRequest
from ui.cache_controls import apply_cache, cache_form_fields
from ui.png_info import form_fields, parse


def test_accordion_values_become_the_request_field():
    assert apply_cache(GenerationRequest(), "off", "5").cache is None
    assert apply_cache(GenerationRequest(), "deepcache", "").cache == {"method": "deepcache", "threshold": 3}
    assert apply_cache(GenerationRequest(), "fbcache", " 0.1 ").cache == {
        "method": "fbcache",
        "threshold": 0.1,
    }
    with pytest.raises(RequestError) as info:
        apply_cache(GenerationRequest(), "deepcache", "often")
    assert info.value.field == "cache"


def test_png_info_reads_the_cache_back_into_the_accordion():
    text = (
        "a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler, Seed: 1, Size: 128x128, Cache: deepcache 3"
    )
    fields = form_fields(parse(text))
    assert fields["cache_method"] == "deepcache" and fields["cache_threshold"] == "3"
    assert apply_cache(GenerationRequest(), fields["cache_method"], fields["cache_threshold"]).cache == {
        "method": "deepcache", "threshold": 3,
    }  # fmt: skip
    assert cache_form_fields("nonsense 9 9") == {}
    assert "cache_method" not in form_fields(parse("a cat\nSteps: 20, Seed: 1"))
