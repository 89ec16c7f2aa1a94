from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from psik.models import BackendConfig, PsikConfig
from tests.psik.helpers import cancel_unfinished


@pytest.fixture
def local_config(tmp_path: Path) -> Iterator[PsikConfig]:
    config = PsikConfig(prefix=tmp_path / "jobs", backends={"default": BackendConfig(type="local")})
    try:
        yield config
    finally:
        cancel_unfinished(config)

