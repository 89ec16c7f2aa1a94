"""The consumer and producer helpers' own errors (no buffer involved)."""

from __future__ import annotations

import pytest

from buffer.client import Producer, StreamTimeout, messages
from buffer.end_marker import END_MARKER
from tests.buffer.helpers import tcp_url


def test_consumer_times_out_with_a_clear_error():
    url = tcp_url()
    with pytest.raises(StreamTimeout, match=f"no message from {url} within 0.5 seconds"):
        next(messages(url, timeout=0.5))


def test_tls_url_needs_tls_files():
    with pytest.raises(ValueError, match="is a TLS URL"):
        next(messages(tcp_url("tls+tcp")))


def test_bad_url_is_rejected_before_connecting():
    with pytest.raises(ValueError, match="has no port"):
        Producer("tcp://127.0.0.1")


@pytest.mark.parametrize("scheme", ["tcp", "tls+tcp"])
def test_producer_refuses_end_markers_as_data_and_times_out_without_a_buffer(scheme, pki):
    p = Producer(tcp_url(scheme), tls=pki["client"] if scheme == "tls+tcp" else None, send_timeout=0.5,
                 close_timeout=0.5)
    try:
        for marker in (b"", END_MARKER):
            with pytest.raises(ValueError, match="equal to the end marker cannot be sent as data"):
                p.send(marker)
        with pytest.raises(StreamTimeout, match="within the send timeout"):
            p.send(b"x")
    finally:
        assert p.close() is False  # no buffer ever confirmed the end
