"""Alert ingestion: payload parsers per source, normalized to AlertIn, and the webhook routes."""
