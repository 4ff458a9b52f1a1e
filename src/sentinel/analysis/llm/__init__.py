"""The LLM analyst/planner (model-agnostic, read-only tools, typed output)."""
