from __future__ import annotations

from pathlib import Path

import pytest

from psik.models import BackendConfig, PsikConfig


@pytest.fixture
def local_config(tmp_path: Path) -> PsikConfig:
    return PsikConfig(prefix=tmp_path / "jobs", backends={"default": BackendConfig(type="local")})


try:  # the SLURM fixture lives in tests/fixtures (written by the infrastructure work)
    from tests.fixtures.slurm import slurm_cluster  # noqa: F401
except ImportError:  # pragma: no cover - until it lands, the SLURM tests error with "fixture not found"
    pass
