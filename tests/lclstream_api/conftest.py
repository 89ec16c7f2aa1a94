from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.pki import Pki, make_pki
from tests.lclstream_api.harness import Service


@pytest.fixture
def api_pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path, server="lclstream-api", users=("alice", "bob", "admin"))


@pytest.fixture
def service(tmp_path: Path, api_pki: Pki) -> Iterator[Service]:
    svc = Service(tmp_path / "svc", api_pki, overrides={"limits": {"concurrent_per_user": 2}})
    try:
        with svc.running():
            yield svc
    finally:
        print("---- lclstream-api log (last 60 lines) ----")  # shown by pytest only when the test failed
        print("\n".join([line for line in svc.log_text().splitlines() if '"caller"' not in line][-60:]))
