"""HDF5Serializer round trips through its decoder with every compression."""

import numpy as np
import pydantic
import pytest

from streamer.base import RunContext
from streamer.envelope import PayloadFormat
from streamer.registry import lookup
from streamer.serializers.hdf5 import HDF5Serializer, HDF5SerializerConfig, decode

FIELDS = {"detector": "/entry/data/data", "pulse_id": "/LCLS/pulse_id", "energy": "/LCLS/photon_energy_eV",
          "source": "/LCLS/source"}


def make_batch(dtype: str = "uint16", n: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    image = rng.poisson(0.3, (n, 2, 24, 40)).astype(dtype)
    image[:, 0, 5, 7] = 1000  # a Bragg-like peak
    return {"detector": image, "pulse_id": np.arange(10, 10 + n, dtype=np.int64),
            "energy": rng.normal(9500.0, 5.0, n), "source": np.array(["exp=xpp1:run=3"] * n)}


def serializer(**options) -> HDF5Serializer:
    config = HDF5SerializerConfig(type="HDF5Serializer", fields=FIELDS, **options)
    return HDF5Serializer(config, RunContext("exp=xpp1:run=3", rank=1, nranks=2))


@pytest.mark.parametrize("compression,level,dtype", [
    ("none", None, "uint16"), ("gzip", None, "uint16"), ("gzip", 9, "int32"), ("lzf", None, "uint16"),
    ("bitshuffle_lz4", None, "uint16"), ("zstd", None, "uint16"), ("zstd", 19, "float32"),
    ("zfp", None, "float32"), ("zfp", None, "int32"),
])
def test_round_trip(compression: str, level: int | None, dtype: str) -> None:
    batch = make_batch(dtype)
    (message,) = serializer(compression=compression, compression_level=level).serialize(batch, 4)
    fields, attrs = decode(message)
    assert set(fields) == set(batch)
    for name, array in batch.items():
        np.testing.assert_array_equal(fields[name], array)
        assert fields[name].dtype == array.dtype
    assert attrs == {"source_identifier": "exp=xpp1:run=3", "rank": 1, "batch_sequence": 4, "event_count": 3}


def test_lossy_zfp_is_close() -> None:
    batch = make_batch("float64")
    (message,) = serializer(compression="zfp", compression_level=40).serialize(batch, 0)
    np.testing.assert_allclose(decode(message)[0]["detector"], batch["detector"], atol=1e-3)


def test_compression_shrinks_sparse_frames_and_chunks_per_event() -> None:
    import io

    import h5py
    batch = make_batch()
    packed = serializer(compression="bitshuffle_lz4").serialize(batch, 0)[0]
    with h5py.File(io.BytesIO(packed), "r") as f:
        dataset = f["/entry/data/data"]
        assert dataset.chunks == (1, 2, 24, 40)
        assert dataset.id.get_storage_size() < batch["detector"].nbytes / 2


def test_registered_with_format() -> None:
    component = lookup("serializers", "HDF5Serializer")
    assert component.implementation is HDF5Serializer
    assert HDF5Serializer.payload_format is PayloadFormat.HDF5


@pytest.mark.parametrize("options,fragment", [
    ({"compression": "lz5"}, "compression"),
    ({"compression": "lzf", "compression_level": 3}, "not used by compression 'lzf'"),
    ({"compression": "gzip", "compression_level": 12}, "out of range for gzip (allowed 0..9)"),
    ({"fields": {}}, "fields"),
    ({"colour": "red"}, "colour"),
])
def test_bad_config_names_the_field(options: dict, fragment: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        HDF5SerializerConfig(**{"type": "HDF5Serializer", "fields": FIELDS, **options})
    assert fragment in str(caught.value)


def test_missing_field_and_zfp_dtype_errors_are_specific() -> None:
    batch = make_batch()
    with pytest.raises(KeyError, match="'pulse_id'"):
        serializer().serialize({"detector": batch["detector"]}, 0)
    with pytest.raises(TypeError, match="zfp compresses only"):
        serializer(compression="zfp").serialize(batch, 0)
