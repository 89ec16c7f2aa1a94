"""Fixtures of the ELog tests: per test module, a real PKI (server "elog"; alice and bob read and annotate,
daq is the writer; mallory's CA was never trusted) and a real ``lclstream-elog serve`` process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.elog.helpers import ElogService
from tests.fixtures.pki import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("elog-pki"), server="elog", users=("alice", "bob", "daq"))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ElogService]:
    svc = ElogService(tmp_path_factory.mktemp("elog-service"), pki)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()
