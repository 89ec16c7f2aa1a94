"""Built-in serializers; importing this package registers them. ``decode_payload`` turns bytes back into data."""

from streamer.serializers import hdf5, msgpack_events, simplon  # noqa: F401  (register the serializers)
from streamer.serializers.decoding import decode_payload

__all__ = ["decode_payload"]
