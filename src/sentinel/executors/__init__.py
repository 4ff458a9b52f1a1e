"""Executors: the only code that changes production (Kubernetes, Redis, SSH, AWS, dry-run)."""
