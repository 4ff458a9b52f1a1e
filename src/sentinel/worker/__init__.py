"""The worker process: runs incident workflows and writes signed audit checkpoints."""
