"""Read-only context sources (a port and its adapters): Prometheus today; Loki, Kubernetes, git later."""
