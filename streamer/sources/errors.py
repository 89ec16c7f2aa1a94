"""Errors an event source raises for problems the user can fix (missing file, missing package)."""


class SourceError(Exception):
    """A clear, user-facing reason why an event source cannot run; the CLI prints it without a traceback."""


class SourceTimeout(SourceError):
    """The source was working but stopped delivering (e.g. a live run that went idle): the stream failed,
    exit status 1 rather than the 2 of bad input."""
