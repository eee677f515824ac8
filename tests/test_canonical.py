"""RFC 8785 (JCS) canonicalization, checked against published vectors and the
independent ``rfc8785`` reference implementation (never against our own output).

Vectors: tests/vectors/jcs (see tests/vectors/README.md for provenance and the
byte details: outputs have no trailing newline, some inputs do).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

import agent_bom
from agent_bom import _core

JCS = Path(__file__).parent / "vectors" / "jcs"
JCS_NAMES = ["arrays", "french", "structures", "unicode", "values", "weird"]
MAX_SAFE = 2**53 - 1


def _load(name: str):
    return json.loads((JCS / name).read_text(encoding="utf-8"))


def _double(hex16: str) -> float:
    return struct.unpack(">d", bytes.fromhex(hex16))[0]


NUMBERS = _load("numbers.json")
README_SAMPLES = _load("numbers_readme_samples.json")
INVALID = _load("numbers_invalid.json")


# --------------------------------------------------------------------------
# RFC 8785 test data (cyberphone testdata/input -> testdata/output)
# --------------------------------------------------------------------------


def test_vector_files_are_all_present() -> None:
    for name in JCS_NAMES:
        assert (JCS / "input" / f"{name}.json").is_file()
        assert (JCS / "output" / f"{name}.json").is_file()
    assert len(NUMBERS) == 24
    assert len(INVALID) == 2


@pytest.mark.parametrize("name", JCS_NAMES)
def test_canonicalize_text_matches_rfc8785_test_data_byte_for_byte(name: str) -> None:
    raw_in = (JCS / "input" / f"{name}.json").read_bytes()
    # README: output files are byte-exact with no trailing newline: compare as is.
    expected = (JCS / "output" / f"{name}.json").read_bytes()
    assert _core.canonicalize(raw_in) == expected


@pytest.mark.parametrize("name", JCS_NAMES)
def test_canonical_json_of_parsed_rfc8785_test_data_matches_output(name: str) -> None:
    raw_in = (JCS / "input" / f"{name}.json").read_bytes()
    expected = (JCS / "output" / f"{name}.json").read_bytes()
    value = json.loads(raw_in)
    assert agent_bom.canonical_json(value) == expected
    # the reference implementation agrees with the published output
    assert rfc8785.dumps(value) == expected


@pytest.mark.parametrize("name", JCS_NAMES)
def test_canonical_output_is_a_fixed_point(name: str) -> None:
    expected = (JCS / "output" / f"{name}.json").read_bytes()
    assert _core.canonicalize(expected) == expected


# --------------------------------------------------------------------------
# RFC 8785 Appendix B number serialization
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("hex16", "expected"), NUMBERS + README_SAMPLES, ids=lambda v: str(v))
def test_appendix_b_number_from_python_float(hex16: str, expected: str) -> None:
    value = _double(hex16)
    assert agent_bom.canonical_json(value) == expected.encode()


@pytest.mark.parametrize(("hex16", "expected"), NUMBERS + README_SAMPLES, ids=lambda v: str(v))
def test_appendix_b_number_from_json_text(hex16: str, expected: str) -> None:
    value = _double(hex16)
    text = repr(value).encode()  # Python's repr of a finite float is valid JSON number text
    assert _core.canonicalize(text) == expected.encode()
    # also the already-canonical spelling and inside a container
    assert _core.canonicalize(expected.encode()) == expected.encode()
    assert _core.canonicalize(b'{"n":[' + text + b"]}") == b'{"n":[' + expected.encode() + b"]}"


@pytest.mark.parametrize("hex16", INVALID)
def test_appendix_b_nan_and_infinity_are_rejected(hex16: str) -> None:
    value = _double(hex16)
    assert math.isnan(value) or math.isinf(value)
    with pytest.raises(ValueError):
        agent_bom.canonical_json(value)
    with pytest.raises(ValueError):
        agent_bom.canonical_json({"x": [value]})


@pytest.mark.parametrize("value", [float("-inf"), float("inf"), float("nan")])
def test_non_finite_floats_rejected(value: float) -> None:
    with pytest.raises(ValueError):
        agent_bom.canonical_json(value)


@pytest.mark.parametrize("text", [b"NaN", b"Infinity", b"-Infinity", b"[NaN]", b'{"a":Infinity}'])
def test_non_finite_number_text_rejected(text: bytes) -> None:
    with pytest.raises(ValueError):
        _core.canonicalize(text)


# --------------------------------------------------------------------------
# Number edge cases (cross-checked against the rfc8785 package)
# --------------------------------------------------------------------------

EDGE_FLOATS = [
    (1e21, b"1e+21"),
    (1e-7, b"1e-7"),
    (-0.0, b"0"),
    (5e-324, b"5e-324"),
    (1.7976931348623157e308, b"1.7976931348623157e+308"),
    (0.1 + 0.2, b"0.30000000000000004"),
    (1e20, b"100000000000000000000"),
    (1e-6, b"0.000001"),
    (123.0, b"123"),
    (-1.5, b"-1.5"),
]


@pytest.mark.parametrize(("value", "expected"), EDGE_FLOATS, ids=lambda v: repr(v))
def test_number_edge_cases_from_python(value: float, expected: bytes) -> None:
    assert rfc8785.dumps(value) == expected  # the reference agrees with the expectation
    assert agent_bom.canonical_json(value) == expected


@pytest.mark.parametrize(("value", "expected"), EDGE_FLOATS, ids=lambda v: repr(v))
def test_number_edge_cases_from_text(value: float, expected: bytes) -> None:
    assert _core.canonicalize(repr(value).encode()) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"1e21", b"1e+21"),
        (b"1E+21", b"1e+21"),
        (b"1e-7", b"1e-7"),
        (b"0.0000001", b"1e-7"),
        (b"-0", b"0"),
        (b"-0.0", b"0"),
        (b"-0e10", b"0"),
        (b"9007199254740993", b"9007199254740992"),  # 2**53 + 1 rounds to even
        (b"5e-324", b"5e-324"),
        (b"1.7976931348623157e308", b"1.7976931348623157e+308"),
        (b"0.30000000000000004", b"0.30000000000000004"),
        (b"1.0", b"1"),
        (b"4.50", b"4.5"),
        (b"2e-3", b"0.002"),
        (b"1E30", b"1e+30"),
        (b"333333333.33333329", b"333333333.3333333"),
    ],
)
def test_number_text_is_reserialized_as_ieee754_double(text: bytes, expected: bytes) -> None:
    assert rfc8785.dumps(float(text)) == expected
    assert _core.canonicalize(text) == expected


def test_integers_within_safe_range_are_exact() -> None:
    for n in (0, 1, -1, 56, MAX_SAFE, -MAX_SAFE, 2**31, -(2**31)):
        assert agent_bom.canonical_json(n) == rfc8785.dumps(n) == str(n).encode()


def test_booleans_are_not_numbers() -> None:
    assert agent_bom.canonical_json([True, False, None]) == b"[true,false,null]"


def test_number_text_beyond_double_range_rejected() -> None:
    # 1e400 is not representable as a finite IEEE 754 double
    with pytest.raises(ValueError):
        _core.canonicalize(b"1e400")


# --------------------------------------------------------------------------
# Rejects
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        b'"\\ud800"',
        b'"\\udc00"',
        b'"x\\ud83dy"',
        b'"\\ude02\\ud83d"',
        b'{"\\ud800":1}',
        b'["ok","\\udfff"]',
    ],
)
def test_canonicalize_rejects_lone_surrogate_escapes(text: bytes) -> None:
    with pytest.raises(ValueError):
        _core.canonicalize(text)


def test_canonicalize_accepts_surrogate_pair_escapes() -> None:
    assert _core.canonicalize(b'"\\ud83d\\ude02"') == '"\U0001f602"'.encode()


@pytest.mark.parametrize("value", ["\ud800", "a\udc00b", {"k": ["\udfff"]}, {"\ud800": 1}])
def test_canonical_json_rejects_lone_surrogates(value) -> None:
    with pytest.raises(ValueError):
        agent_bom.canonical_json(value)


@pytest.mark.parametrize(
    "text",
    [
        b'{"a":1,"a":2}',
        b'{"a":1,"a":1}',
        b'{"x":{"b":1,"c":2,"b":3}}',
        b'[{"k":null,"k":null}]',
        b'{"a":1,"\\u0061":2}',  # the same key, once escaped
    ],
)
def test_canonicalize_rejects_duplicate_keys(text: bytes) -> None:
    with pytest.raises(ValueError):
        _core.canonicalize(text)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"a": [0, 2**53]}, "$.a[1]"),
        ({"a": [0, -(2**53)]}, "$.a[1]"),
        ([1, {"b": 2**64}], "$[1].b"),
        (2**53, "$"),
    ],
)
def test_canonical_json_rejects_unsafe_integers_naming_the_path(value, path: str) -> None:
    with pytest.raises(ValueError) as exc:
        agent_bom.canonical_json(value)
    assert path in str(exc.value)


@pytest.mark.parametrize("value", [{1: "a"}, {"ok": {None: 1}}, {("t",): 1}, {1.5: 2}])
def test_canonical_json_rejects_non_string_keys(value) -> None:
    with pytest.raises(ValueError):
        agent_bom.canonical_json(value)


@pytest.mark.parametrize("value", [object(), b"bytes", {1, 2}, 1j])
def test_canonical_json_rejects_non_json_types(value) -> None:
    with pytest.raises(ValueError):
        agent_bom.canonical_json(value)


@pytest.mark.parametrize(
    "text",
    [b"", b"{", b"[1,]", b'{"a" 1}', b"'a'", b"01", b"1.", b".5", b"[1] [2]", b'"\x01"', b"\xff"],
)
def test_canonicalize_rejects_malformed_json(text: bytes) -> None:
    with pytest.raises(ValueError):
        _core.canonicalize(text)


# --------------------------------------------------------------------------
# Property: agrees with the rfc8785 reference implementation
# --------------------------------------------------------------------------

_keys = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(
            ["\U0001f602", "\ufb33", "\u20ac", "\x7f", "\x80", "\n", "é", "\ufffd", "a", "A"]
        ),
    ),
    max_size=6,
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-MAX_SAFE, max_value=MAX_SAFE),
    st.text(max_size=20),
)
json_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(_keys, children, max_size=5),
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_canonical_json_agrees_with_rfc8785_reference(value) -> None:
    expected = rfc8785.dumps(value)
    assert agent_bom.canonical_json(value) == expected


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_canonicalize_text_agrees_with_rfc8785_reference(value) -> None:
    expected = rfc8785.dumps(value)
    assert _core.canonicalize(json.dumps(value).encode()) == expected
    assert (
        _core.canonicalize(json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8"))
        == expected
    )


# --------------------------------------------------------------------------
# Nesting limits: refuse, never crash
# --------------------------------------------------------------------------


def test_canonicalize_nesting_limit() -> None:
    ok = b"[" * 128 + b"]" * 128
    assert _core.canonicalize(ok) == ok
    with pytest.raises(ValueError):
        _core.canonicalize(b"[" * 129 + b"]" * 129)
    with pytest.raises(ValueError):
        _core.canonicalize(b'{"a":' * 100_000 + b"1" + b"}" * 100_000)
    assert _core.canonicalize(b"[[1]]", max_depth=2) == b"[[1]]"
    with pytest.raises(ValueError):
        _core.canonicalize(b"[[1]]", max_depth=1)


def test_canonical_json_refuses_cyclic_and_very_deep_values() -> None:
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError):
        agent_bom.canonical_json(cyclic)
    deep: dict = {}
    cur = deep
    for _ in range(10_000):
        cur["a"] = {}
        cur = cur["a"]
    with pytest.raises(ValueError):
        agent_bom.canonical_json(deep)
