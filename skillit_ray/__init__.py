"""skillit-ray: online, skill-aware data selection for language-model training on Ray."""

__version__ = "0.1.0"
