"""Sentinel's exception tree; the API maps each branch to one HTTP status.

SentinelError
 ├── BadRequest            400  (malformed input)
 │    └── PayloadTooLarge  413
 ├── Unauthorized          401  (missing or unknown token)
 ├── Forbidden             403  (token lacks the scope / role)
 ├── NotFound              404
 ├── Conflict              409
 └── Unavailable           503  (a dependency is down)
"""

from __future__ import annotations

from typing import Any


class SentinelError(Exception):
    """Base of every error Sentinel raises on purpose."""

    status = 500
    code = "internal"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(SentinelError):
    status = 400
    code = "bad_request"


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payload_too_large"


class Unauthorized(SentinelError):
    status = 401
    code = "unauthorized"


class Forbidden(SentinelError):
    status = 403
    code = "forbidden"


class NotFound(SentinelError):
    status = 404
    code = "not_found"


class Conflict(SentinelError):
    status = 409
    code = "conflict"


class Unavailable(SentinelError):
    status = 503
    code = "unavailable"
