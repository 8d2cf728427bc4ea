"""Data: shard schema and validation, generators, the Ray Data pipeline, the skill store."""
