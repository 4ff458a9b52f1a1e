"""Root-cause analysis: the deterministic causal engine and the optional LLM analyst."""
