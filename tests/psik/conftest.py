from __future__ import annotations

from pathlib import Path

import pytest

from psik.models import BackendConfig, PsikConfig
from tests.fixtures.slurm import slurm_cluster  # noqa: F401


@pytest.fixture
def local_config(tmp_path: Path) -> PsikConfig:
    return PsikConfig(prefix=tmp_path / "jobs", backends={"default": BackendConfig(type="local")})

