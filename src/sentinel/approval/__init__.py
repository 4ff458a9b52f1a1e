"""Approval requests and decisions: approver RBAC, single-use digest-bound approvals."""
