"""Remediation plans: what was proposed, the policy's decision, and its execution."""
