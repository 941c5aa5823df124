"""Events after commit: frames, the per-worker hub, the bus (memory or Redis), SSE streams."""
