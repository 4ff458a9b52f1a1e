"""Deterministic causal RCA over metrics and change events."""

from sentinel.analysis.causal.analyzer import CausalAnalyzer, rank_case
from sentinel.analysis.causal.series import CaseError

__all__ = ["CaseError", "CausalAnalyzer", "rank_case"]
