from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.certified.procs import Served, certified_serve
from tests.fixtures.pki import (
    Pki,
    make_pki,
    pki,  # noqa: F401
)


@pytest.fixture(scope="module")
def module_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("certified"), server="api", users=("alice", "bob"))


@pytest.fixture(scope="module")
def served(module_pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The test app under ``certified serve`` with the PKI's server identity; alias "api" registered."""
    with certified_serve(module_pki.server_dir, "tests.certified.app:app", tmp_path_factory.mktemp("serve")) as s:
        module_pki.add_service_alias("api", s.url)
        yield s
