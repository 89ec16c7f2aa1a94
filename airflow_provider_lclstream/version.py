"""The provider's version (one place: the manifest and the package read it)."""

__version__ = "0.1.0"
