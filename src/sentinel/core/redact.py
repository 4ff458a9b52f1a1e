"""Secret redaction for anything that reaches logs, prompts or the audit log."""

from __future__ import annotations

import re
from typing import Any

_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|routing[_-]?key|authorization|cookie|credential"
    r"|private[_-]?key)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"(Bearer\s+[A-Za-z0-9._~+/=-]{8,}|snt_[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
    r"|xox[abpr]-[A-Za-z0-9-]{10,})"
)
REDACTED = "[REDACTED]"

# Every alternative of _SECRET_VALUE starts with one of these case-sensitive marks, and
# JSON escaping never splits one (it only touches quotes, backslashes and control
# characters): serialized JSON without any of them holds no secret-shaped string.
SECRET_VALUE_MARKS = ("Bearer", "snt_", "AKIA", "PRIVATE KEY", "xox")
_SECRET_VALUE_MARKS_UTF8 = tuple(m.encode() for m in SECRET_VALUE_MARKS)


# Counters named after tokens, not secrets: LLM usage and budgets must survive the audit log.
_TOKEN_COUNTS = frozenset(
    {
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "prompt_tokens",
        "completion_tokens",
        "max_output_tokens",
        "token_limit",
        "token_budget_per_incident",
    }
)


def is_secret_key(key: str) -> bool:
    """True for a mapping key whose value is masked whatever it is (password, token, ...)."""
    return key.lower() not in _TOKEN_COUNTS and _SECRET_KEY.search(key) is not None


def may_hold_secret_value(text: str | bytes) -> bool:
    """False only when no string inside ``text`` (plain or serialized JSON, str or UTF-8) is
    secret-shaped."""
    if isinstance(text, bytes):
        return any(mark in text for mark in _SECRET_VALUE_MARKS_UTF8)
    return any(mark in text for mark in SECRET_VALUE_MARKS)


def mask_secrets(text: str) -> str:
    """The string with secret-shaped substrings (bearer tokens, keys, ...) masked."""
    return _SECRET_VALUE.sub(REDACTED, text)


def redact(value: Any) -> Any:
    """Return a copy with secret-looking keys' values and secret-shaped strings masked."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    return value
