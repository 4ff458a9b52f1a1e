"""Just-in-time grants: the record of what one per-action credential allowed, to whom, until when.

An executor that mints a credential for one action (an SSH user certificate, an STS
session) puts ``JitGrant.as_dict()`` under the result's ``jit`` key, so the incident's
audit trail shows the credential's scope and lifetime, never the credential itself.

Result keys avoid the words the audit redactor masks (``credential``, ``token``,
``secret``, ``private_key``...), so the scope stays readable in the audit log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_.@=,+-]+")


@dataclass(frozen=True)
class JitGrant:
    """One short-lived credential minted for one action."""

    mechanism: str  # "ssh_user_certificate" | "sts_assume_role"
    identity: str  # the certificate's key id / the assumed-role ARN
    issued_at: datetime
    expires_at: datetime
    scope: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The grant as plain JSON for the audit log."""
        return {
            "mechanism": self.mechanism,
            "identity": self.identity,
            "issued_at": self.issued_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "lifetime_seconds": int((self.expires_at - self.issued_at).total_seconds()),
            "scope": self.scope,
        }


def incident_id_from_key(idempotency_key: str) -> str:
    """The incident id: an idempotency key's first ``:``-separated part."""
    return idempotency_key.split(":", 1)[0]


def sanitize(text: str, max_len: int) -> str:
    """``text`` restricted to ``[A-Za-z0-9_.@=,+-]`` (runs of others become ``-``), cut to max_len."""
    return _UNSAFE.sub("-", text)[:max_len]
