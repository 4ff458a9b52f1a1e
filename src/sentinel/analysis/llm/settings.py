"""LLM settings live with the rest of the configuration in core; re-exported here."""

from sentinel.core.llm_settings import LlmSettings

__all__ = ["LlmSettings"]
