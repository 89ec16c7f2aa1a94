"""Why a job's script cannot start, and what its end says: reasons a person can act on.

Before a supervisor starts a script it checks, as the job's account, that the script file is there and
that its interpreter (the ``#!`` line, or bash) exists and may be executed by that account. A job that
cannot start then ends ``failed`` naming the missing or non-executable file, instead of a bare exit
code 126/127. A script that ran and failed ends with its exit code and the last line it wrote on
stderr, which is where bash, env and most programs say what went wrong.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

BASH = "/bin/bash"
REASON_CHARS = 300


def interpreter(script: str) -> tuple[str, list[str]]:
    """The program that runs ``script`` and the arguments from its ``#!`` line (bash without one)."""
    if not script.startswith("#!"):
        return BASH, []
    words = script[2:].split("\n", 1)[0].split()
    return (words[0], words[1:]) if words else ("", [])


def _not_runnable(path: str, what: str) -> str | None:
    if not path:
        return f"{what} is empty"
    if not os.path.exists(path):
        return f"{what} {path} does not exist"
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        return f"{what} {path} is not executable by this account"
    return None


def preflight(script_path: Path, script: str, env: dict[str, str]) -> str | None:
    """Why the script at ``script_path`` (text ``script``) cannot start here, or None when it can."""
    if not script_path.is_file():
        return f"the script file {script_path} is missing"
    if not os.access(script_path, os.R_OK):
        return f"the script file {script_path} is not readable by this account"
    program, args = interpreter(script)
    if program == BASH and not script.startswith("#!"):
        return _not_runnable(BASH, "the shell")
    if not os.access(script_path, os.X_OK):
        return f"the script file {script_path} is not executable by this account"
    problem = _not_runnable(program, "its interpreter (from the #! line)")
    if problem is None and os.path.basename(program) == "env":
        wanted = next((a for a in args if not a.startswith("-") and "=" not in a), None)
        if wanted and shutil.which(wanted, path=env.get("PATH", os.defpath)) is None:
            problem = f"its interpreter {wanted} (from `#!{program} {' '.join(args)}`) is not on the job's PATH"
    return problem


def start_error(exc: OSError) -> str:
    """An exec failure as a sentence naming the file."""
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:REASON_CHARS] if lines else ""


def exit_reason(rc: int, stderr_tail: str = "") -> str:
    """``exit code N: <last stderr line>`` or ``killed by signal SIGKILL``; "" for success."""
    if rc == 0:
        return ""
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = str(-rc)
        return f"killed by signal {name}"
    last = last_line(stderr_tail)
    return f"exit code {rc}" + (f": {last}" if last else "")
