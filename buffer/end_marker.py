"""The end-of-stream message: 16 fixed bytes that every nng binding receives with its plain receive call.

A producer sends it after its last message (the buffer then hangs up, which confirms that it took
everything); the buffer sends one to each consumer connection once everything was handed out (the
consumer then hangs up). It used to be a zero-length message, which pynng's ``Socket.recv()`` cannot
receive (pynng issue 104), so the most common consumer code crashed at the end of every stream.

Bytes (hex): ``00 6e 6e 67 2d 73 74 72 65 61 6d 3a 65 6e 64 00``, i.e. ``\\0nng-stream:end\\0``.
A data message of exactly these 16 bytes would be taken for the end; the streamer's messages carry a
32-byte envelope and never are. ``is_end`` also accepts an empty message, which older producers and
buffers sent as the end; nothing here sends one any more.

    if is_end(message): break
"""

from __future__ import annotations

END_MARKER = b"\x00nng-stream:end\x00"
END_MARKER_SIZE = len(END_MARKER)  # 16


def is_end(message: bytes | bytearray | memoryview) -> bool:
    """True for the end marker (and for an empty message, the end marker of older versions)."""
    size = len(message)
    return size == 0 or (size == END_MARKER_SIZE and bytes(message) == END_MARKER)


def end_size(nbytes: int) -> bool:
    """True when a message of ``nbytes`` could be an end marker (its bytes must then be checked)."""
    return nbytes in (0, END_MARKER_SIZE)
