"""Errors an event source raises for problems the user can fix (missing file, missing package)."""


class SourceError(Exception):
    """A clear, user-facing reason why an event source cannot run; the CLI prints it without a traceback."""
