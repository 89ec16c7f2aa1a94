"""Runs in a spawned process: dial a TLS Pair socket as a certified p256 identity, send messages, and
wait for the receiver's acknowledgement before closing (nng drops unsent messages on close)."""

from __future__ import annotations

import sys

import pynng

from certified.nng import tls_config


def send_messages(config_dir: str, url: str, alias: str, count: int) -> None:
    with pynng.Pair0(tls_config=tls_config(config_dir, server=False, alias=alias),
                     send_timeout=20_000, recv_timeout=30_000) as pair:
        pair.dial(url, block=True)
        for i in range(count):
            pair.send(f"message {i}".encode())
        sys.exit(0 if pair.recv() == b"ack" else 1)
