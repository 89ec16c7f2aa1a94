"""The Python client: stream(transfer_id) yields decoded batches; CachedDataset reads its cache on later epochs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lclstream_api import stream
from lclstream_api.batches import CachedDataset
from lclstream_api.models import TransferOptions
from tests.lclstream_api.harness import Service, synthetic_config, wait_for


def _ids(batches: list) -> list[int]:
    return sorted(int(v) for b in batches for v in np.asarray(b.data["pulse_id"]).ravel())


@pytest.mark.parametrize("connections", [1, 2])
def test_stream_yields_decoded_batches_with_rank_and_sequence(service: Service, connections: int) -> None:
    with service.client("alice") as api:
        view = api.request(synthetic_config(events=20, batch=5), {"ranks": 2})
        # by id: with the service alias and alice's identity folder, or with her client
        how = {"server": "lclstream", "config_dir": service.pki.user_dir("alice")} if connections == 1 \
            else {"client": api}
        batches = stream(view.id, idle_timeout=60, connections=connections, **how)
        got = list(batches)
        assert batches.complete()
        assert sorted((b.rank, b.seq) for b in got) == [(r, s) for r in (0, 1) for s in range(2)]
        assert _ids(got) == list(range(20))
        assert got[0].data["tof"].shape == (5, 2, 256)
        wait_for(lambda: api.status(view.id).state.value == "completed", 60, what="completed")


def test_second_epoch_reads_the_cache(service: Service, tmp_path: Path) -> None:
    config = synthetic_config(events=16, batch=4)
    with service.client("alice") as api:
        dataset = CachedDataset(config, client=api, options=TransferOptions(ranks=2), cache_dir=tmp_path)
        assert not dataset.cached
        first = list(dataset)
        assert dataset.cached and len(dataset.transfers) == 1
        second = list(dataset)
        assert len(dataset.transfers) == 1  # no new request
        assert _ids(first) == _ids(second) == list(range(16))
        for a, b in zip(sorted(first, key=lambda x: (x.rank, x.seq)), second, strict=True):
            assert (a.rank, a.seq) == (b.rank, b.seq)
            np.testing.assert_array_equal(a.data["tof"], b.data["tof"])
        other_job = CachedDataset(config, client=api, options=TransferOptions(ranks=2), cache_dir=tmp_path)
        assert other_job.key == dataset.key == api.status(dataset.transfers[0]).config_hash
        assert _ids(list(other_job)) == list(range(16)) and other_job.transfers == []
        assert len(api.list()) == 1
