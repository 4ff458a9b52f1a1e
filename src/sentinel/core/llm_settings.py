"""LLM settings: which model answers and how much it may cost (env SENTINEL_LLM__*)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

__all__ = ["LlmSettings"]


class LlmSettings(BaseModel):
    """Which model answers, and how much it may cost. Off (provider None) by default."""

    provider: Literal["openai", "anthropic"] | None = None
    # OpenAI-compatible servers (vLLM, Ollama, llama.cpp, LiteLLM, Azure's /openai/v1) or a
    # proxy in front of Anthropic; None means the vendor's default endpoint.
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str = ""
    # Deadline for one whole analyze/plan/narrate call (every request and tool call in it);
    # each HTTP request gets the same bound.
    timeout_seconds: float = Field(default=30.0, gt=0)
    # Times an invalid answer is sent back to the model with the validation error.
    max_retries: int = Field(default=2, ge=0, le=10)
    # Times the SDK re-sends a failed HTTP request (429/5xx/connection); 0 = one attempt.
    transport_retries: int = Field(default=0, ge=0, le=5)
    # Prompt + completion tokens for one incident (analysis and planning together).
    token_budget_per_incident: int = Field(default=24_000, ge=1_000)
    max_requests_per_call: int = Field(default=8, ge=1)
    max_tool_calls_per_call: int = Field(default=8, ge=0)
    # Largest tool output (characters) handed to the model; less when the budget runs low.
    tool_output_max_chars: int = Field(default=4_000, ge=200)
    max_output_tokens: int = Field(default=1_500, ge=64)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    # USD per 1,000 tokens, for the cost recorded per incident.
    prompt_price_per_1k: float = Field(default=0.0, ge=0.0)
    completion_price_per_1k: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _model_named(self) -> LlmSettings:
        if self.provider is not None and not self.model:
            raise ValueError("llm.model is required when llm.provider is set")
        return self

    @property
    def enabled(self) -> bool:
        """True when a provider is configured."""
        return self.provider is not None
