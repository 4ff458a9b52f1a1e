"""The HTTP API: app factory, auth, error mapping, routes."""
