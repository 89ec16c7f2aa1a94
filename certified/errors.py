"""The one exception type certified raises for problems a user can fix (bad input, missing files)."""

from __future__ import annotations


class CertifiedError(Exception):
    """A problem with the user's input or configuration; the CLIs print it and exit with status 2."""
