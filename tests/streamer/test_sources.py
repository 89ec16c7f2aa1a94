"""Event sources and data sources: deterministic synthetic data, HDF5 replay across files, psana absent."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import h5py
import numpy as np
import pytest

from streamer.base import EventSource, RunContext
from streamer.config import load_config
from streamer.runner import Chain
from streamer.sources.errors import SourceError
from streamer.sources.synthetic_scalars import HC_EV_ANGSTROM


def chain_for(tmp_path: Path, event_source: dict, data_sources: dict, rank: int = 0, nranks: int = 1) -> Chain:
    config = load_config({
        "source_identifier": "exp=src01:run=9",
        "event_source": event_source,
        "data_sources": data_sources,
        "data_serializer": {"type": "HDF5Serializer", "fields": {name: f"/{name}" for name in data_sources}},
        "data_handlers": [{"type": "BinaryFileWritingDataHandler", "write_directory": str(tmp_path / "out")}],
    })
    context = RunContext(config.source_identifier, rank, nranks, None, options={"start_time": 1000.0})
    return Chain(config, context)


SYNTHETIC = {"type": "SyntheticEventSource", "number_of_events": 12, "seed": 42}
MIXED = {
    "det": {"type": "SyntheticAreaDetector", "shape": [2, 32, 48], "peaks_per_event": 5},
    "tof": {"type": "SyntheticWaveformDigitizer", "channels": 3, "samples": 256},
    "energy": {"type": "SyntheticScalar", "kind": "photon_energy"},
    "wavelength": {"type": "SyntheticScalar", "kind": "wavelength"},
    "pulse_id": {"type": "SyntheticScalar", "kind": "pulse_id"},
    "time": {"type": "EventTimestamp", "repetition_rate_hz": 10},
    "source": {"type": "SourceIdentifier"},
}


def test_synthetic_events_are_the_same_whichever_rank_makes_them(tmp_path: Path) -> None:
    whole = list(chain_for(tmp_path, SYNTHETIC, MIXED).source.events(range(0, 12)))
    second_half = list(chain_for(tmp_path, SYNTHETIC, MIXED, rank=1, nranks=2).source.events(range(6, 12)))
    for event, again in zip(whole[6:], second_half, strict=True):
        assert event.keys() == again.keys()
        for name in event:
            np.testing.assert_array_equal(event[name], again[name])
    assert not np.array_equal(whole[0]["det"], whole[1]["det"])
    other_seed = list(chain_for(tmp_path, {**SYNTHETIC, "seed": 43}, MIXED).source.events(range(1)))
    assert not np.array_equal(other_seed[0]["det"], whole[0]["det"])


def test_synthetic_values_shapes_and_statistics(tmp_path: Path) -> None:
    events = list(chain_for(tmp_path, SYNTHETIC, MIXED).source.events(range(3, 8)))
    for index, event in zip(range(3, 8), events, strict=True):
        assert event["det"].shape == (2, 32, 48) and event["det"].dtype == np.uint16
        assert event["tof"].shape == (3, 256) and event["tof"].dtype == np.int16
        assert event["pulse_id"] == index
        assert event["time"] == pytest.approx(1000.0 + index / 10)
        assert event["source"] == b"exp=src01:run=9"
        assert 9000 < event["energy"] < 10000
        assert event["wavelength"] == pytest.approx(HC_EV_ANGSTROM / event["energy"])
    stacked = np.stack([e["det"] for e in events])
    assert (stacked == 0).mean() > 0.5, "background should be sparse"
    assert stacked.max() > 20, "Bragg-like peaks should stand out"
    assert max(int(e["tof"].max()) for e in events) > 50, "electron pulses should stand out of the noise"


@pytest.mark.parametrize(("detector", "shape"), [("jungfrau4M", (8, 512, 1024)), ("epix10k2M", (16, 352, 384))])
def test_detector_presets(tmp_path: Path, detector: str, shape: tuple[int, int, int]) -> None:
    sources = {"det": {"type": "SyntheticAreaDetector", "detector": detector, "background_pool": 1}}
    (event,) = chain_for(tmp_path, SYNTHETIC, sources).source.events(range(1))
    assert event["det"].shape == shape and event["det"].dtype == np.uint16


def write_run_file(path: Path, start: int, count: int) -> None:
    with h5py.File(path, "w") as f:
        f["/entry/data"] = np.arange(start, start + count, dtype=np.int32)[:, None, None] * np.ones((1, 4, 5), np.int32)
        f["/LCLS/energy"] = np.linspace(9000, 9100, count) + start


def test_hdf5_source_replays_events_across_files(tmp_path: Path) -> None:
    write_run_file(tmp_path / "run_a.h5", 0, 7)
    write_run_file(tmp_path / "run_a2.h5", 7, 0)  # an empty file in the middle is skipped over
    write_run_file(tmp_path / "run_b.h5", 7, 5)
    source_cfg = {"type": "HDF5EventSource", "files": [str(tmp_path / "run_*.h5")], "read_chunk": 3}
    data = {"frame": {"type": "HDF5Dataset", "dataset": "/entry/data"},
            "energy": {"type": "HDF5Dataset", "dataset": "LCLS/energy"},
            "pid": {"type": "SyntheticScalar", "kind": "pulse_id"}}
    source = chain_for(tmp_path, source_cfg, data).source
    assert source.number_of_events() == 12
    events = list(source.events(range(5, 10)))  # crosses the file boundary at 7
    assert [int(e["frame"][0, 0]) for e in events] == [5, 6, 7, 8, 9]
    assert [int(e["pid"]) for e in events] == [5, 6, 7, 8, 9]
    assert list(events[0]) == ["frame", "energy", "pid"]
    assert events[0]["frame"].shape == (4, 5)
    source.close()


def test_hdf5_source_names_missing_file_and_dataset(tmp_path: Path) -> None:
    write_run_file(tmp_path / "run_a.h5", 0, 3)
    data = {"frame": {"type": "HDF5Dataset", "dataset": "/entry/data"}}
    missing = tmp_path / "run_missing.h5"
    source = chain_for(tmp_path, {"type": "HDF5EventSource", "files": [str(tmp_path / "run_a.h5"), str(missing)]},
                       data).source
    with pytest.raises(SourceError, match=f"input file {missing} does not exist"):
        source.number_of_events()
    wrong = {"frame": {"type": "HDF5Dataset", "dataset": "/entry/nothing"}}
    source = chain_for(tmp_path, {"type": "HDF5EventSource", "files": [str(tmp_path / "run_a.h5")]}, wrong).source
    with pytest.raises(SourceError, match="has no dataset '/entry/nothing'"):
        source.number_of_events()


@pytest.mark.skipif(importlib.util.find_spec("psana") is not None, reason="psana is installed here")
@pytest.mark.parametrize("source_type", ["Psana1EventSource", "Psana2EventSource"])
def test_psana_sources_validate_but_say_psana_is_needed(tmp_path: Path, source_type: str) -> None:
    event_source = {"type": source_type, "experiment": "mfxp1001121", "run": 7}
    if source_type == "Psana2EventSource":
        event_source["number_of_events"] = 10
    data = {"jungfrau": {"type": "PsanaDetector", "psana_name": "jungfrau4M"}}
    with pytest.raises(SourceError, match=f"^{source_type} needs the psana package") as info:
        chain_for(tmp_path, event_source, data)
    assert "conda install" in str(info.value) and "\n" not in str(info.value)


class GappySource(EventSource):
    """Like psana at the facility: some events lack a datum (None)."""

    def number_of_events(self) -> int:
        return 6

    def events(self, indices: range):
        for index in indices:
            yield {"pulse_id": None if index % 3 == 1 else np.int64(index)}


def test_events_missing_a_datum_are_skipped_and_counted(tmp_path: Path) -> None:
    chain = chain_for(tmp_path, SYNTHETIC, {"pulse_id": {"type": "SyntheticScalar", "kind": "pulse_id"}})
    chain.source = GappySource(chain.config.event_source, chain.config.data_sources, chain.context)
    kept = list(chain.items(range(6)))
    assert [item.index for item in kept] == [0, 2, 3, 5]
    assert chain.skipped == 2
