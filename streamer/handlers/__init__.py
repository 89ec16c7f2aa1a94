"""Built-in data handlers; importing this package registers them."""

from streamer.handlers import files, nng_push, zmq_push, zmq_rep  # noqa: F401  (register the handlers)
