"""The package version, in a module of its own so that any module can name it without
importing the package root (which sits at the top of the layering)."""

__version__ = "0.3.0"
