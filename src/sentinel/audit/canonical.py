"""RFC 8785 canonical JSON, fast.

``rfc8785.dumps`` is pure Python and was most of the cost of ingesting an alert. For the
documents the audit log holds (strings, safe integers, booleans, null, arrays, objects)
``orjson`` with sorted keys (compact, raw UTF-8, like the C-accelerated ``json`` encoder
but about five times faster) writes the very same bytes, so it is used whenever that is
provably the case:

- strings: both escape exactly ``"``, ``\\``, ``\\b \\f \\n \\r \\t`` and other controls as
  ``\\u00xx`` (lowercase hex) and write everything else as UTF-8; orjson refuses lone
  surrogates, and the slow path then refuses them as RFC 8785 does;
- integers within ±(2**53 − 1) print the same; booleans and null trivially;
- object keys sort by UTF-16 code units in RFC 8785 and by code point in orjson: the two
  orders agree unless a key holds a character outside the Basic Multilingual Plane.

Anything else (a float, a big integer, an astral character in a key, a non-string key)
goes through ``rfc8785``. A property test checks the two paths agree byte for byte.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import rfc8785

from sentinel.core.redact import REDACTED, is_secret_key, mask_secrets, may_hold_secret_value

_INT_MAX = 2**53 - 1
_SORTED = orjson.OPT_SORT_KEYS
_ASTRAL = "\U00010000"


class _NotJson(Exception):
    """A mapping key json would convert (int, float, bool, None) or refuse: use the old path."""


def _key_plain(key: str) -> bool:
    return key.isascii() or max(key) < _ASTRAL


# Alert payloads repeat the same keys and many of the same short values (label names,
# severities, namespaces): remember what the regexes said about them. Bounded, and a lost
# race only recomputes.
_CACHE_MAX = 8192
_KEYS: dict[str, tuple[bool, bool]] = {}
_VALUES: dict[str, str] = {}  # strings known to hold no secret


def _key_info(key: str) -> tuple[bool, bool]:
    """(value must be masked, key sorts the same in UTF-16 and code points)."""
    info = _KEYS.get(key)
    if info is None:
        if len(_KEYS) >= _CACHE_MAX:
            _KEYS.clear()
        info = _KEYS[key] = (is_secret_key(key), _key_plain(key))
    return info


def _masked(text: str) -> str:
    if len(text) > 128:
        return mask_secrets(text)
    if text in _VALUES:
        return text
    out = mask_secrets(text)
    if out == text:  # only clean strings are remembered, never a secret
        if len(_VALUES) >= _CACHE_MAX:
            _VALUES.clear()
        _VALUES[text] = text
    return out


def is_plain(obj: Any) -> bool:
    """True when ``json``'s sorted compact output is exactly RFC 8785's for ``obj``."""
    stack = [obj]
    while stack:
        v = stack.pop()
        if v is None or isinstance(v, str | bool):
            continue
        if isinstance(v, int):
            if -_INT_MAX <= v <= _INT_MAX:
                continue
            return False
        if isinstance(v, dict):
            for k in v:
                if not isinstance(k, str) or not _key_plain(k):
                    return False
            stack.extend(v.values())
            continue
        if isinstance(v, list | tuple):
            stack.extend(v)
            continue
        return False  # floats and anything else: let rfc8785 decide
    return True


def canonical(obj: Any, *, plain: bool | None = None) -> bytes:
    """RFC 8785 canonical JSON bytes (``plain``: the caller already knows ``is_plain(obj)``)."""
    if plain if plain is not None else is_plain(obj):
        try:
            return orjson.dumps(obj, option=_SORTED)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate: rfc8785 raises its own error below
    return bytes(rfc8785.dumps(obj))


_NATIVE_KEYS: set[str] = set()  # keys known to be neither secret-looking nor astral


def keys_are_native(mapping: dict[str, Any]) -> bool:
    """The one-pass path may write every key of ``mapping`` as it is: none is secret-looking
    (it would be masked) and none holds a character outside the BMP (it would sort apart).

    Alert payloads repeat a few dozen keys, so the common case is one C-level superset test.
    """
    if _NATIVE_KEYS.issuperset(mapping):
        return True
    for key in mapping:
        if key in _NATIVE_KEYS:
            continue
        if type(key) is not str:
            return False
        secret, plain = _key_info(key)
        if secret or not plain:
            return False
        if len(_NATIVE_KEYS) >= _CACHE_MAX:
            _NATIVE_KEYS.clear()
        _NATIVE_KEYS.add(key)
    return True


def canonical_json_native(doc: Any) -> bytes | None:
    """``canonical(clean_details(doc))`` in one C-encoder pass, or None to take the walk.

    Only for a ``doc`` made of what ``json.loads`` returns with no float, no integer past
    ±(2**53 − 1) and only objects for which :func:`keys_are_native` holds (the caller
    checked both while parsing). Then the walk of :func:`clean_details` could only change a
    secret-shaped string, and the encoded text shows whether one can be there
    (``may_hold_secret_value``); if so, None sends the caller through the walk. A property
    test checks both ways give the same bytes.
    """
    try:
        data = orjson.dumps(doc, option=_SORTED)
    except orjson.JSONEncodeError:
        return None  # a lone surrogate, say: the walk refuses it as RFC 8785 does
    if may_hold_secret_value(data):
        return None
    return data


def _legacy_clean(value: Any) -> Any:
    from sentinel.core.redact import redact

    return redact(json.loads(json.dumps(value, default=str)))


def clean_details(details: Any) -> tuple[Any, bool]:
    """JSON-compatible, redacted copy of ``details`` and whether it :func:`is_plain`.

    The same result as ``redact(json.loads(json.dumps(details, default=str)))`` in one walk:
    tuples become lists, str/int/float subclasses (enums) their plain values, unknown
    objects ``str(obj)``; values under secret-looking keys and secret-shaped strings are
    masked.
    """
    state = [True]
    try:
        return _clean(details, state), state[0]
    except _NotJson:
        value = _legacy_clean(details)
        return value, is_plain(value)


def _clean(v: Any, state: list[bool]) -> Any:
    if v is None or v is True or v is False:
        return v
    if isinstance(v, str):
        return _masked(str.__str__(v))
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        v = int(v)
        if not -_INT_MAX <= v <= _INT_MAX:
            state[0] = False
        return v
    if isinstance(v, float):
        state[0] = False
        return float(v)
    if isinstance(v, dict):
        out: dict[str, Any] = {}
        for k, item in v.items():
            if type(k) is not str:
                raise _NotJson
            secret, plain = _key_info(k)
            if not plain:
                state[0] = False
            if secret:
                out[k] = REDACTED
            elif type(item) is str and item in _VALUES:
                out[k] = item  # the common case, inlined: a string already known clean
            else:
                out[k] = _clean(item, state)
        return out
    if isinstance(v, list | tuple):
        return [_clean(item, state) for item in v]
    return mask_secrets(str(v))
