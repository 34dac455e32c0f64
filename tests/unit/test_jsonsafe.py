"""psa.jsonsafe: the limits are where they say, and ordinary JSON decodes as json.loads does."""

from __future__ import annotations

import json

import pytest

from psa import jsonsafe
from psa.jsonsafe import UnsafeJSON


def nested(levels: int, kind: str = "list") -> str:
    if kind == "list":
        return "[" * levels + "]" * levels
    return '{"a":' * levels + "1" + "}" * levels


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_depth_limit_is_exact_and_deep_documents_do_not_raise_recursion_error(kind):
    assert jsonsafe.loads(nested(jsonsafe.MAX_DEPTH, kind)) is not None
    for levels in (jsonsafe.MAX_DEPTH + 1, 900, 10_000, 100_000):
        with pytest.raises(UnsafeJSON, match="deeper than 100 levels"):
            jsonsafe.loads(nested(levels, kind))


def test_integer_digit_limit():
    assert jsonsafe.loads("9" * 100) == int("9" * 100)
    assert jsonsafe.loads("-" + "9" * 100) == -int("9" * 100)
    with pytest.raises(UnsafeJSON, match="5000 digits"):
        jsonsafe.loads('{"x": ' + "1" * 5000 + "}")


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", '{"a": [1, 1E999]}'])
def test_non_finite_numbers_are_refused(text):
    with pytest.raises(UnsafeJSON):
        jsonsafe.loads(text)


def test_ordinary_floats_keep_their_value():
    assert jsonsafe.loads("[1.5, -0.0, 1e308, 5e-324]") == [1.5, -0.0, 1e308, 5e-324]


@pytest.mark.parametrize("text", ['"a\\ud800b"', '{"\\udfff": 1}', '["ok", {"k": ["\\udc00"]}]'])
def test_lone_surrogates_are_refused_in_values_and_keys(text):
    with pytest.raises(UnsafeJSON, match="surrogate"):
        jsonsafe.loads(text)


def test_surrogate_pairs_are_one_character_and_fine():
    assert jsonsafe.loads('"\\ud83d\\ude00"') == "\U0001f600"


def test_nul_is_allowed_unless_refused():
    assert jsonsafe.loads('{"a": "x\\u0000y"}') == {"a": "x\x00y"}
    with pytest.raises(UnsafeJSON, match="NUL"):
        jsonsafe.loads('{"a": "x\\u0000y"}', allow_nul=False)
    with pytest.raises(UnsafeJSON, match="NUL"):
        jsonsafe.loads('{"k\\u0000": 1}', allow_nul=False)


def test_not_json_is_a_plain_value_error_and_unsafe_json_is_one_too():
    with pytest.raises(ValueError) as exc:
        jsonsafe.loads(b"{not json")
    assert not isinstance(exc.value, UnsafeJSON)
    with pytest.raises(ValueError):
        jsonsafe.loads(b"\xff\xfe")
    assert issubclass(UnsafeJSON, ValueError)


def test_same_result_as_json_loads_for_ordinary_documents():
    doc = {"event": "trigger", "n": [1, 2.5, None, True, "é", {"deep": [[["x"]]]}], "": ""}
    text = json.dumps(doc)
    assert jsonsafe.loads(text) == json.loads(text) == doc
    assert jsonsafe.loads(("\ufeff" + text).encode()) == doc  # a BOM is tolerated
    assert jsonsafe.loads('{"a": "line\nbreak"}', strict=False) == {"a": "line\nbreak"}
