"""Built-in data handlers; importing this package registers them."""

from streamer.handlers import files  # noqa: F401  (registers BinaryFileWritingDataHandler)
