"""NNGPushDataHandler: every message onto an NNG Push0 socket, wrapped in the accounting envelope.

``role: client`` dials ``url`` (the receiver, e.g. the NNG-Stream buffer, listens) and retries until the
peer is up, failing with a clear error after ``connect_timeout_s``; ``role: server`` listens on ``url``
(one rank only: ranks cannot share an address). With ``envelope: true`` (default) each message is
``streamer.envelope.pack_data(...)`` and ``close()`` sends this rank's ``pack_end(...)`` marker, so a
consumer can prove completeness with ``StreamLedger``. Multi-part (SIMPLON) messages are packed with
``streamer.serializers.frames.pack_frames``.

Nothing is lost at the end: NNG has no linger, so ``flush()`` waits until the socket can send again,
which with a zero send buffer happens only once the last message has been written to the transport; and
a client's ``close()`` then sends the transport end (``buffer.end_marker``, the NNG-Stream buffer's
producer protocol) and waits until the receiver hangs up, which it does only after taking every message
before it. Without that confirmation nng's TLS transport was seen to drop a last message at close.

``tls+tcp://`` URLs use ``tls_cert``/``tls_key`` (PEM files, own identity) and ``tls_ca`` (PEM file of
the CA that signed the peer, which is then required to present a certificate). A client on a
``tls+tcp://`` URL pushes through ``buffer.client.Producer`` (the same bytes over Python's ``ssl``:
nng's bundled TLS engine moves about 0.2 GiB/s per connection, OpenSSL several times that).
"""

from __future__ import annotations

import logging
import select
import ssl
import threading
import time
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import pynng
from pydantic import Field, model_validator

from buffer.client import Producer, StreamTimeout
from buffer.end_marker import END_MARKER
from buffer.tls import client_context
from streamer.base import ComponentConfig, DataHandler, Message, MessageInfo, RunContext, message_nbytes
from streamer.envelope import pack_data, pack_end
from streamer.registry import Component, register
from streamer.serializers.frames import pack_frames

log = logging.getLogger(__name__)
SCHEMES = ("tcp", "tls+tcp", "ipc", "inproc", "ws", "wss")
NO_REDIAL_MS = 24 * 3600 * 1000


class NNGPushDataHandlerConfig(ComponentConfig):
    type: Literal["NNGPushDataHandler"]
    url: str = Field(description="NNG address, e.g. tcp://127.0.0.1:5555 or tls+tcp://buffer.example:5555")
    role: Literal["client", "server"] = Field("client", description="client: dial url; server: listen on url")
    envelope: bool = Field(True, description="wrap messages in the accounting envelope and send end markers")
    tls_cert: Path | None = Field(None, description="PEM certificate of this side (tls+tcp)")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    tls_ca: Path | None = Field(None, description="PEM CA certificate that must have signed the peer")
    connect_timeout_s: float = Field(60.0, gt=0, description="how long a client retries dialing")
    send_timeout_s: float = Field(600.0, gt=0, description="give up when the peer takes no message this long")
    close_timeout_s: float = Field(60.0, gt=0, description="how long a client waits for the receiver to confirm "
                                                           "the end of its stream by hanging up")

    @model_validator(mode="after")
    def _check(self) -> NNGPushDataHandlerConfig:
        scheme = self.url.split("://", 1)[0] if "://" in self.url else ""
        if scheme not in SCHEMES:
            raise ValueError(f"url {self.url!r} must start with one of {', '.join(s + '://' for s in SCHEMES)}")
        tls_fields = [name for name in ("tls_cert", "tls_key", "tls_ca") if getattr(self, name) is not None]
        if scheme != "tls+tcp" and tls_fields:
            raise ValueError(f"{', '.join(tls_fields)} only apply to tls+tcp:// urls")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if scheme == "tls+tcp" and self.role == "server" and self.tls_cert is None:
            raise ValueError("a tls+tcp server needs tls_cert and tls_key")
        if scheme == "tls+tcp" and self.role == "client" and self.tls_ca is None:
            raise ValueError("a tls+tcp client needs tls_ca to verify the server")
        return self


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise FileNotFoundError(f"NNGPushDataHandler.{what}: cannot read {path}: {exc.strerror}") from exc


def tls_config(config: NNGPushDataHandlerConfig) -> pynng.TLSConfig | None:
    if not config.url.startswith("tls+tcp://"):
        return None
    client = config.role == "client"
    options: dict = {
        "auth_mode": pynng.TLSConfig.AUTH_MODE_REQUIRED if config.tls_ca else pynng.TLSConfig.AUTH_MODE_NONE,
    }
    if config.tls_ca is not None:
        options["ca_string"] = _read(config.tls_ca, "tls_ca")
    if config.tls_cert is not None and config.tls_key is not None:
        options["own_cert_string"] = _read(config.tls_cert, "tls_cert")
        options["own_key_string"] = _read(config.tls_key, "tls_key")
    if client:
        options["server_name"] = urlsplit(config.url).hostname
    mode = pynng.TLSConfig.MODE_CLIENT if client else pynng.TLSConfig.MODE_SERVER
    return pynng.TLSConfig(mode, **options)


def tls_producer(config: NNGPushDataHandlerConfig) -> Producer:
    """A client on a tls+tcp:// URL: a producer over Python's ssl, with the configured files and timeouts."""
    assert config.tls_ca is not None  # the config's validator makes sure
    for path, what in ((config.tls_ca, "tls_ca"), (config.tls_cert, "tls_cert"), (config.tls_key, "tls_key")):
        if path is not None:
            _read(path, what)
    try:
        context = client_context(config.tls_ca, config.tls_cert, config.tls_key)
    except ssl.SSLError as exc:
        raise ValueError(f"NNGPushDataHandler: tls_cert, tls_key and tls_ca do not make a TLS identity: {exc}") from exc
    return Producer(config.url, context=context, send_timeout=config.send_timeout_s,
                    close_timeout=config.close_timeout_s)


def dial_with_retry(socket: pynng.Socket, url: str, timeout_s: float) -> None:
    """Dial until the peer accepts, or raise ConnectionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay, attempts = 0.05, 0
    while True:
        attempts += 1
        try:
            socket.dial(url, block=True)
            return
        except pynng.NNGException as exc:
            if time.monotonic() + delay > deadline:
                raise ConnectionError(f"could not connect to {url} within {timeout_s:g} s ({attempts} attempts; "
                                      f"last error: {exc}); is the receiver listening there?") from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


class NNGPushDataHandler(DataHandler):
    def __init__(self, config: NNGPushDataHandlerConfig, context: RunContext) -> None:
        super().__init__(config, context)
        self.config: NNGPushDataHandlerConfig = config
        self._socket: pynng.Push0 | None = None
        self._producer: Producer | None = None  # a client on a tls+tcp:// URL
        self._hung_up = threading.Event()
        self.end_confirmed: bool | None = None  # client role: did the receiver confirm the end by hanging up

    def open(self) -> None:
        cfg = self.config
        if cfg.role == "server" and self.context.nranks > 1:
            raise ValueError(f"NNGPushDataHandler role 'server' listens on one address, which "
                             f"{self.context.nranks} ranks cannot share; use role 'client' (the receiver "
                             "listens) or run a single rank")
        if cfg.role == "client" and cfg.url.startswith("tls+tcp://"):
            producer = tls_producer(cfg)
            try:
                producer.connect(cfg.connect_timeout_s)  # ConnectionError: not listening, or refused us
            except BaseException:
                producer.abort()
                raise
            log.info("rank %d: NNG push connected to %s", self.context.rank, cfg.url)
            self._producer = producer
            return
        socket = pynng.Push0(send_timeout=int(cfg.send_timeout_s * 1000), send_buffer_size=0,
                             tls_config=tls_config(cfg))
        socket.add_post_pipe_remove_cb(lambda _pipe: self._hung_up.set())
        try:
            if cfg.role == "client":
                dial_with_retry(socket, cfg.url, cfg.connect_timeout_s)
                log.info("rank %d: NNG push connected to %s", self.context.rank, cfg.url)
            else:
                socket.listen(cfg.url)
                log.info("rank %d: NNG push listening on %s", self.context.rank, cfg.url)
        except BaseException:
            socket.close()
            raise
        self._socket = socket

    def handle(self, message: Message, info: MessageInfo) -> None:
        if self._socket is None and self._producer is None:
            raise RuntimeError("NNGPushDataHandler.handle called before open()")
        payload = pack_frames(message) if isinstance(message, list) else message
        if self.config.envelope:
            payload = pack_data(payload, fmt=info.fmt, rank=info.rank, nranks=info.nranks, seq=info.seq,
                                count=info.event_count)
        self._send(payload)
        self.messages_sent += 1
        self.bytes_sent += message_nbytes(message)

    def _send(self, data: bytes) -> None:
        try:
            if self._producer is not None:
                self._producer.send(data)
                return
            assert self._socket is not None
            self._socket.send(data)
        except (pynng.Timeout, StreamTimeout) as exc:
            raise TimeoutError(f"NNG peer at {self.config.url} took no message for {self.config.send_timeout_s:g} s"
                               ) from exc

    def flush(self) -> None:
        """Wait until the last message was written to the transport (the socket can send again)."""
        if self._socket is None:
            return  # not open, or a TLS client: each send returns once its bytes are with the kernel
        ready, _, _ = select.select([self._socket.send_fd], [], [], self.config.send_timeout_s)
        if not ready:
            raise TimeoutError(f"NNG peer at {self.config.url} did not take the last message within "
                               f"{self.config.send_timeout_s:g} s")

    def close(self) -> None:
        if self._producer is not None:
            self._close_producer()
        if self._socket is None:
            return
        try:
            # from here on a hang-up is the receiver's answer to the end of this stream: one that hangs
            # up as soon as it has this rank's end envelope confirms it as well as one that waits for
            # the transport end marker
            self._hung_up.clear()
            self._send_end()
            self.flush()
            if self.config.role == "client":
                self._confirm_end()
        finally:
            self._socket.close()
            self._socket = None

    def _close_producer(self) -> None:
        assert self._producer is not None
        try:
            self._send_end()
            self.end_confirmed = self._producer.close()
            self._log_confirmation()
        finally:
            self._producer.abort()
            self._producer = None

    def _send_end(self) -> None:
        """This rank's end-of-stream envelope (when the stream has envelopes)."""
        if self.config.envelope:
            self._send(pack_end(rank=self.context.rank, nranks=self.context.nranks, sent=self.messages_sent))
            log.info("rank %d: end of stream sent to %s after %d messages", self.context.rank, self.config.url,
                     self.messages_sent)

    def _log_confirmation(self) -> None:
        if self.end_confirmed:
            log.info("rank %d: %s confirmed the end of the stream", self.context.rank, self.config.url)
        else:
            log.warning("rank %d: %s did not confirm the end of the stream within %g s (it did not hang up "
                        "after the end marker); the last messages may not have arrived",
                        self.context.rank, self.config.url, self.config.close_timeout_s)

    def _confirm_end(self) -> None:
        """Send the transport end and wait for the receiver to hang up (it has then taken everything)."""
        assert self._socket is not None
        # once the receiver hangs up, do not dial it again (a buffer would count a new producer)
        self._socket.reconnect_time_min = self._socket.reconnect_time_max = NO_REDIAL_MS
        if not self._hung_up.is_set():
            try:  # the last send was flushed, so the connection takes this at once, unless it is gone
                self._socket.send(END_MARKER, block=False)
            except pynng.TryAgain:
                if not self._hung_up.is_set():  # still connected: wait for room as for any message
                    self._send(END_MARKER)
        self.end_confirmed = self._hung_up.wait(self.config.close_timeout_s)
        self._log_confirmation()

    def summary(self) -> dict:
        return {**super().summary(), "url": self.config.url, "end_confirmed": self.end_confirmed}


register("data_handlers", Component(NNGPushDataHandlerConfig, NNGPushDataHandler))
