"""Shared CLI plumbing: bad input exits with status 2 and one clear sentence, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from certified.errors import CertifiedError


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def read_input(path: str, what: str) -> bytes:
    """Bytes of a file named on the command line ('-' reads standard input)."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise CertifiedError(f"{what} file {path!r} does not exist") from exc
    except IsADirectoryError as exc:
        raise CertifiedError(f"{what} {path!r} is a directory, expected a file") from exc
    except PermissionError as exc:
        raise CertifiedError(f"{what} file {path!r} is not readable: permission denied") from exc


def run(prog: str, body: Callable[[], int]) -> int:
    """Call ``body``; CertifiedError -> message on stderr and status 2; Ctrl-C -> status 130."""
    try:
        return body()
    except CertifiedError as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return 130


def service_pairs(values: list[str]) -> dict[str, str]:
    """Parse repeated ``--service ALIAS=URL`` options."""
    pairs = {}
    for value in values:
        alias, sep, url = value.partition("=")
        if not sep or not alias:
            raise CertifiedError(f"--service {value!r} must look like ALIAS=URL")
        pairs[alias] = url
    return pairs
