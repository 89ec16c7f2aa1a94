"""BinaryFileWritingDataHandler: one file per message, rank-qualified names, written atomically.

File name: ``{file_prefix}_r{rank:04d}_{seq:06d}{ext}`` in ``write_directory`` where ``ext`` follows the
payload format (``.h5``, ``.msgpack``, ``.simplon``, ``.bin``). Each file is written under a hidden
temporary name in the same directory and renamed into place, so a reader never sees a partial file.
A multi-part message (SIMPLON) is stored as its frames, each preceded by its length (u64 little endian);
``read_frames`` reads it back.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from streamer.base import ComponentConfig, DataHandler, Message, MessageInfo, RunContext, message_nbytes
from streamer.envelope import PayloadFormat
from streamer.registry import Component, register

EXTENSIONS: dict[PayloadFormat, str] = {
    PayloadFormat.RAW: ".bin",
    PayloadFormat.HDF5: ".h5",
    PayloadFormat.MSGPACK: ".msgpack",
    PayloadFormat.SIMPLON: ".simplon",
}
_FRAME_LENGTH = struct.Struct("<Q")


class BinaryFileWritingDataHandlerConfig(ComponentConfig):
    type: Literal["BinaryFileWritingDataHandler"]
    write_directory: Path = Field(description="directory for the files; created if missing")
    file_prefix: str = Field("lclstream", description="start of every file name")
    fsync: bool = Field(False, description="fsync each file before renaming it into place (durable, slower)")

    @field_validator("file_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or "/" in value or value.startswith("."):
            raise ValueError("must be a non-empty file name part without '/' and not starting with '.'")
        return value


def file_name(prefix: str, info: MessageInfo) -> str:
    return f"{prefix}_r{info.rank:04d}_{info.seq:06d}{EXTENSIONS.get(info.fmt, '.bin')}"


def read_frames(data: bytes) -> list[bytes]:
    """Split the contents of a multi-part message file back into its frames."""
    frames, offset = [], 0
    while offset < len(data):
        if offset + _FRAME_LENGTH.size > len(data):
            raise ValueError(f"truncated frame length at byte {offset}")
        (length,) = _FRAME_LENGTH.unpack_from(data, offset)
        offset += _FRAME_LENGTH.size
        if offset + length > len(data):
            raise ValueError(f"frame at byte {offset} claims {length} bytes, only {len(data) - offset} left")
        frames.append(data[offset:offset + length])
        offset += length
    return frames


class BinaryFileWritingDataHandler(DataHandler):
    def __init__(self, config: BinaryFileWritingDataHandlerConfig, context: RunContext) -> None:
        super().__init__(config, context)
        self.config: BinaryFileWritingDataHandlerConfig = config
        self.files_written: list[Path] = []

    def open(self) -> None:
        self.config.write_directory.mkdir(parents=True, exist_ok=True)

    def handle(self, message: Message, info: MessageInfo) -> None:
        name = file_name(self.config.file_prefix, info)
        final = self.config.write_directory / name
        temporary = self.config.write_directory / f".{name}.tmp"
        with open(temporary, "wb") as out:
            if isinstance(message, list):
                for part in message:
                    out.write(_FRAME_LENGTH.pack(len(part)))
                    out.write(part)
            else:
                out.write(message)
            if self.config.fsync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(temporary, final)
        self.files_written.append(final)
        self.messages_sent += 1
        self.bytes_sent += message_nbytes(message)

    def summary(self) -> dict:
        return {**super().summary(), "directory": str(self.config.write_directory)}


register("data_handlers", Component(BinaryFileWritingDataHandlerConfig, BinaryFileWritingDataHandler))
