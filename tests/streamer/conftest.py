"""Helpers for streamer tests: run the real ``lclstreamer`` (optionally under the venv's mpiexec)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 180


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    for name in ("PMI_RANK", "PMI_SIZE", "PMI_FD", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "HYDI_CONTROL_FD"):
        env.pop(name, None)
    return env


def run_lclstreamer(args: list[str], *, ranks: int | None = None, cwd: Path | None = None,
                    timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``lclstreamer ARGS`` as its own process (under ``mpiexec -n ranks`` when ranks is given)."""
    command = [str(VENV_BIN / "lclstreamer"), *args]
    if ranks is not None:
        command = [str(VENV_BIN / "mpiexec"), "-n", str(ranks), *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=cli_env(),
                          cwd=cwd, stdin=subprocess.DEVNULL, check=False)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, Any], str], Path]:
    def write(config: dict[str, Any], name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return write


def small_synthetic_config(output_dir: Path, number_of_events: int = 20, batch_size: int = 3) -> dict[str, Any]:
    """A small synthetic run written as HDF5 files: a tiny area detector, a waveform, pulse ids, timestamps."""
    return {
        "source_identifier": "exp=test01:run=3",
        "event_source": {"type": "SyntheticEventSource", "number_of_events": number_of_events, "seed": 7},
        "data_sources": {
            "detector": {"type": "SyntheticAreaDetector", "shape": [2, 16, 24], "peaks_per_event": 3},
            "pulse_id": {"type": "SyntheticScalar", "kind": "pulse_id"},
            "energy": {"type": "SyntheticScalar", "kind": "photon_energy"},
        },
        "processing_pipeline": [{"type": "BatchProcessingPipeline", "batch_size": batch_size}],
        "data_serializer": {
            "type": "HDF5Serializer",
            "fields": {"detector": "/entry/data/data", "pulse_id": "/LCLS/pulse_id", "energy": "/LCLS/energy"},
            "compression": "bitshuffle_lz4",
        },
        "data_handlers": [{"type": "BinaryFileWritingDataHandler", "write_directory": str(output_dir),
                           "file_prefix": "run"}],
    }


@pytest.fixture
def lclstreamer() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real ``lclstreamer`` command: ``lclstreamer(args, ranks=None, cwd=None)``."""
    return run_lclstreamer


@pytest.fixture
def small_config() -> Callable[..., dict[str, Any]]:
    """``small_config(output_dir, number_of_events=20, batch_size=3)``: a small synthetic HDF5 run config."""
    return small_synthetic_config
