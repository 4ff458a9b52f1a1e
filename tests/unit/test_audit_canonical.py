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


def _nested(scalars: Any, keys: Any) -> Any:
    """JSON-shaped trees: lists and objects (keys from ``keys``) over ``scalars``."""
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)
        ),
        max_leaves=20,
    )


_json = _nested(_scalars, _text)


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


# --- the one-pass path for JSON-native details (webhook bodies) ---------------------------

_native_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1),
    _text,
    st.sampled_from(
        [
            "Bearer abcdefghijklmnop",
            "xoxb-1234567890-abc",
            "snt_abcdefghijklmnopqrstu",
            "AKIAABCDEFGHIJKLMNOP",
            "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----",
            "token expired",
            "pa\u017f\u017fword",  # long s: case-insensitively "password"
        ]
    ),
)
_native_keys = st.one_of(
    _text,
    st.sampled_from(
        ["Password", "x-api-key", "routing_key", "input_tokens", "groupKey", "\U0001f600", "k"]
    ),
)
_native = _nested(_native_scalars, _native_keys)


def _slow_body(details: Any) -> bytes:
    clean, plain = clean_details(details)
    return canonical({"details": clean, "actor": "a"}, plain=plain)


def _keys(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        return [*obj, *(k for v in obj.values() for k in _keys(v))]
    if isinstance(obj, list):
        return [k for v in obj for k in _keys(v)]
    return []


@settings(max_examples=800, deadline=None)
@given(_native)
def test_json_native_one_pass_equals_the_walk(details: Any) -> None:
    from hypothesis import assume

    from sentinel.audit.canonical import canonical_json_native, keys_are_native

    assume(all(keys_are_native({k: None}) for k in _keys(details)))  # the caller vouches
    try:
        want: bytes | None = _slow_body(details)
    except rfc8785.CanonicalizationError:
        want = None  # a lone surrogate: the walk refuses it, so must the caller
    fast = canonical_json_native({"details": details, "actor": "a"})
    if fast is not None:
        assert fast == want


def test_json_native_one_pass_is_taken_only_when_nothing_needs_redaction() -> None:
    from sentinel.api.routes_alerts import parse_json_document
    from sentinel.audit.canonical import canonical_json_native

    body = {"labels": {"alertname": "X", "service": "api", "naïve": "é"}, "truncatedAlerts": 0}
    assert canonical_json_native(body) == canonical(body)
    for value in ("Authorization: Bearer abcdefghijklmnop", "xoxb-1234567890-abc", "AKIA..."):
        assert canonical_json_native({"annotations": {"description": value}}) is None
    # secret-looking and astral keys are refused while parsing
    for key in ("api_key", "PASSWORD", "x-auth-token", r"pa\u017f\u017fword", r"\ud83d\ude00"):
        raw, native = parse_json_document(b'{"labels": {"' + key.encode() + b'": "v"}}')
        assert native is False, key
    assert parse_json_document(b'{"labels": {"groupKey": "v", "input_tokens": 3}}')[1]
    assert b"hunter2" not in _slow_body({"labels": {"password": "hunter2"}})


def test_parse_json_document_flags_numbers_the_fast_path_cannot_take() -> None:
    from sentinel.api.routes_alerts import parse_json_document

    assert parse_json_document(b'{"a": 1, "b": [true, null, "x"]}') == (
        {"a": 1, "b": [True, None, "x"]},
        True,
    )
    for body in (b'{"a": 1.5}', b'{"a": 9007199254740992}', b'{"a": NaN}', b'{"a": 1e3}'):
        assert parse_json_document(body)[1] is False
    assert parse_json_document('{"é": "ü"}'.encode("utf-16"))[0] == {"é": "ü"}


_wire_scalars = st.one_of(
    _native_scalars,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
)
_wire = _nested(_wire_scalars, _native_keys)


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(_native_keys, _wire, max_size=5), st.booleans())
def test_parse_json_document_orjson_path_equals_the_json_path(doc: Any, ascii_only: bool) -> None:
    """The orjson fast path returns exactly what the ``json`` module's path returns: the
    same values (a big integer stays exact), the same nativeness verdict."""
    from sentinel.api.routes_alerts import _parse_json_slow, parse_json_document

    try:
        body = json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    except UnicodeEncodeError:
        return
    got = parse_json_document(body)
    want = _parse_json_slow(body)
    assert got[1] == want[1]
    assert json.dumps(got[0], sort_keys=True) == json.dumps(want[0], sort_keys=True)
    assert [type(v) for v in _leaves(got[0])] == [type(v) for v in _leaves(want[0])]


def _leaves(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return [x for k in sorted(obj) for x in _leaves(obj[k])]
    if isinstance(obj, list):
        return [x for v in obj for x in _leaves(v)]
    return [obj]
