"""Training: the per-worker loop, masked loss, per-skill evaluation, optimizer."""
