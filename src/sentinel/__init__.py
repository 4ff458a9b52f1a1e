"""Sentinel: an autonomous SRE agent whose every decision is policy-gated and audited."""
