"""Built-in serializers; importing this package registers them. ``decode_payload`` turns bytes back into data."""

from streamer.serializers import hdf5  # noqa: F401  (registers HDF5Serializer)
