"""Backends start, cancel and reconcile runs of a job; states are recorded by psik.transitions only."""

from __future__ import annotations

from psik.backends.base import Backend
from psik.backends.local import LocalBackend
from psik.backends.slurm import SlurmBackend

BACKEND_TYPES: dict[str, type[Backend]] = {"local": LocalBackend, "slurm": SlurmBackend}


def backend_for(type_name: str) -> Backend:
    return BACKEND_TYPES[type_name]()


__all__ = ["BACKEND_TYPES", "Backend", "LocalBackend", "SlurmBackend", "backend_for"]
