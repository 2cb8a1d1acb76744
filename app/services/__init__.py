"""Service functions: they add and mutate; the caller (view, task, CLI command) commits."""
