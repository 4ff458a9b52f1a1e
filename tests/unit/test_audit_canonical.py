"""The fast canonical JSON path writes exactly what rfc8785 writes, or defers to it."""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.audit.canonical import canonical, clean_details, is_plain
from sentinel.core.redact import redact

# Text that exercises every escaping rule: controls, quotes, backslashes, DEL, U+2028,
# BMP characters above the surrogates (U+E000-U+FFFF) and astral ones (sorting differs).
_chars = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=0x7F),
    st.sampled_from(["\u2028", "\ue000", "\uffff", "\U0001f600", "é", "\x7f", '"', "\\"]),
    st.characters(exclude_categories=["Cs"]),
)
_text = st.text(_chars, max_size=12)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    _text,
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_text, inner, max_size=4),
    ),
    max_leaves=20,
)


def _reference(obj: Any) -> bytes | type[Exception]:
    try:
        return bytes(rfc8785.dumps(obj))
    except Exception as exc:  # noqa: BLE001 - the exception type is the expected outcome
        return type(exc)


@settings(max_examples=600, deadline=None)
@given(_json)
def test_canonical_matches_rfc8785(obj: Any) -> None:
    want = _reference(obj)
    if isinstance(want, bytes):
        assert canonical(obj) == want
    else:
        with pytest.raises(want):
            canonical(obj)


def test_fast_path_is_taken_for_alert_like_documents() -> None:
    doc = {"labels": {"alertname": "X", "n": 3}, "alerts": [{"a": True, "b": None}]}
    assert is_plain(doc)
    assert not is_plain({"x": 1.5})
    assert not is_plain({"x": 2**53})
    assert not is_plain({"\U0001f600": 1})  # UTF-16 order differs from code point order


def test_lone_surrogate_is_refused_like_rfc8785() -> None:
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical({"x": "\ud800"})


class _Color(enum.Enum):
    RED = "red"


class _Kind(str, enum.Enum):  # noqa: UP042 - str() differs from StrEnum: the point
    A = "a-value"


class _Num(enum.IntEnum):
    ONE = 1


_secretish = st.sampled_from(["password", "api_key", "Token", "authorization", "name", "x"])
_values = st.one_of(
    _scalars,
    st.sampled_from(
        [
            "Bearer abcdefghijklmnop",
            "key AKIAABCDEFGHIJKLMNOP here",
            _Kind.A,
            _Num.ONE,
            _Color.RED,
            datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            (1, "two"),
        ]
    ),
)
_details = st.recursive(
    _values,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(_secretish, _text), inner, max_size=4),
    ),
    max_leaves=15,
)


@settings(max_examples=400, deadline=None)
@given(_details)
def test_clean_details_is_the_old_three_pass_result(details: Any) -> None:
    old = redact(json.loads(json.dumps(details, default=str)))
    new, plain = clean_details(details)
    assert json.dumps(new, sort_keys=True) == json.dumps(old, sort_keys=True)
    assert plain == is_plain(new)


def test_clean_details_masks_secrets_and_falls_back_for_non_string_keys() -> None:
    new, plain = clean_details({"password": "hunter2", "h": "Bearer abcdefghijklmnop", 1: "x"})
    assert new == {"password": "[REDACTED]", "h": "[REDACTED]", "1": "x"}
    assert plain
