"""The package version."""

__all__ = ["__version__"]

__version__ = "1.0.0.dev0"
