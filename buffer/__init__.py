"""NNG-Stream: receive-once, send-once FIFO memory buffer. Imports nothing of the other packages.

- ``nng-stream`` (``buffer.cli``): the command line.
- ``buffer.config.BufferConfig``: everything one buffer needs (pydantic; the CLI builds it).
- ``buffer.engine.Buffer(cfg).run() -> BufferStatus``: run a buffer in-process.
- ``buffer.status.BufferStatus`` / ``BufferState``: the status line, status file and callback body.
- ``buffer.client.messages(url, tls=..., timeout=...)``: iterate a consumer's messages to the end.
- ``buffer.client.Producer(url, tls=...)``: push messages; ``close()`` ends them explicitly.
- ``buffer.end_marker``: the 16 bytes that end a stream (``END_MARKER``, ``is_end``).
- ``buffer.tls``: TLS contexts from PEM files, and the certificate roles (``producer``, ``consumer``).
- ``buffer.callbacks.verify(body, secret, header)``: check a callback's ``x-hub-signature-256``.
"""
