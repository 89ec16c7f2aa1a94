"""BinaryFileWritingDataHandler writes one rank-qualified file per message, atomically."""

from pathlib import Path

import numpy as np
import pydantic
import pytest

from streamer.base import MessageInfo, RunContext
from streamer.envelope import PayloadFormat
from streamer.handlers.files import (
    BinaryFileWritingDataHandler,
    BinaryFileWritingDataHandlerConfig,
    read_frames,
)
from streamer.serializers.hdf5 import HDF5Serializer, HDF5SerializerConfig, decode


def handler(directory: Path, rank: int = 0) -> BinaryFileWritingDataHandler:
    config = BinaryFileWritingDataHandlerConfig(type="BinaryFileWritingDataHandler",
                                                write_directory=directory / "out", file_prefix="run7")
    return BinaryFileWritingDataHandler(config, RunContext("run7", rank=rank, nranks=2))


def test_hdf5_files_per_rank_read_back(tmp_path: Path) -> None:
    for rank in (0, 1):
        context = RunContext("run7", rank=rank, nranks=2)
        ser = HDF5Serializer(HDF5SerializerConfig(type="HDF5Serializer", fields={"x": "/x"}), context)
        out = handler(tmp_path, rank)
        out.open()
        for seq in range(3):
            batch = {"x": np.full((2, 4, 4), 10 * rank + seq, dtype=np.uint16)}
            for message in ser.serialize(batch, seq):
                out.handle(message, MessageInfo(rank, 2, seq, 2, PayloadFormat.HDF5))
        out.flush()
        out.close()
        assert out.messages_sent == 3 and out.bytes_sent == sum(p.stat().st_size for p in out.files_written)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"run7_r{r:04d}_{s:06d}.h5" for r in (0, 1) for s in range(3)]  # no temporaries left
    fields, attrs = decode((tmp_path / "out" / "run7_r0001_000002.h5").read_bytes())
    assert (fields["x"] == 12).all() and attrs["rank"] == 1 and attrs["batch_sequence"] == 2


def test_multipart_message_round_trips(tmp_path: Path) -> None:
    out = handler(tmp_path)
    out.open()
    frames = [b'{"htype":"dimage-1.0"}', b"", b"\x00" * 1000]
    out.handle(frames, MessageInfo(0, 1, 0, 1, PayloadFormat.SIMPLON))
    (path,) = out.files_written
    assert path.suffix == ".simplon" and read_frames(path.read_bytes()) == frames


@pytest.mark.parametrize("prefix", ["", "a/b", ".hidden"])
def test_bad_prefix_rejected(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="file_prefix"):
        BinaryFileWritingDataHandlerConfig(type="BinaryFileWritingDataHandler", write_directory=tmp_path,
                                           file_prefix=prefix)
