"""Built-in data handlers; importing this package registers them."""

from streamer.handlers import files, nng_push  # noqa: F401  (register the handlers)
