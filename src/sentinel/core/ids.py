"""Identifiers: UUIDs as strings, and deterministic workflow ids."""

from __future__ import annotations

import uuid


def new_id() -> str:
    """A fresh random UUID4 as a string."""
    return str(uuid.uuid4())


def triage_workflow_id(incident_id: str) -> str:
    """The one triage workflow id of an incident (starting it twice starts it once)."""
    return f"{incident_id}:triage"


def remediation_workflow_id(incident_id: str) -> str:
    """The one remediation workflow id of an incident."""
    return f"{incident_id}:remediate"
