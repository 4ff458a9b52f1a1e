"""The incident workflow (the spec's agent graph) on a durable runtime."""
