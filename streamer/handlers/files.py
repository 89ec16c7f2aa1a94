"""BinaryFileWritingDataHandler: one file per message, rank-qualified names, written atomically.

File name: ``{file_prefix}_r{rank:04d}_{seq:06d}{ext}`` in ``write_directory`` where ``ext`` follows the
payload format (``.h5``, ``.msgpack``, ``.simplon``, ``.bin``). Each file is written under a hidden
temporary name in the same directory and renamed into place, so a reader never sees a partial file.
A multi-part message (SIMPLON) is stored packed by ``streamer.serializers.frames.pack_frames``;
``read_frames`` reads it back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from streamer.base import ComponentConfig, DataHandler, Message, MessageInfo, RunContext, message_nbytes
from streamer.envelope import PayloadFormat
from streamer.registry import Component, register
from streamer.serializers.frames import pack_frames, unpack_frames

EXTENSIONS: dict[PayloadFormat, str] = {
    PayloadFormat.RAW: ".bin",
    PayloadFormat.HDF5: ".h5",
    PayloadFormat.MSGPACK: ".msgpack",
    PayloadFormat.SIMPLON: ".simplon",
}


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
    return unpack_frames(data)


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
            out.write(pack_frames(message) if isinstance(message, list) else message)
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
