"""Built-in selection policies (installed as ``skillit_policies``; found via entry points)."""
