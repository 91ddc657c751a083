"""ZeroFlow companion: forward-pass-only optimizers for class-incremental continual learning."""

__version__ = "0.1.0"
