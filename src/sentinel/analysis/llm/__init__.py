"""The LLM analyst/planner (model-agnostic, read-only tools, typed output bound to evidence).

Off by default: `build_llm(settings.llm, ...)` returns None unless `llm.provider` is set.
"""

from sentinel.analysis.llm.analyst import (
    FallbackAnalyzer,
    FallbackPlanner,
    LlmAnalyst,
    build_llm,
    build_model,
)
from sentinel.analysis.llm.schemas import CausalLink, EntityRef, PlanOutput, RcaOutput
from sentinel.analysis.llm.settings import LlmSettings

__all__ = [
    "CausalLink",
    "EntityRef",
    "FallbackAnalyzer",
    "FallbackPlanner",
    "LlmAnalyst",
    "LlmSettings",
    "PlanOutput",
    "RcaOutput",
    "build_llm",
    "build_model",
]
