"""Runs in a spawned process: dial a TLS Push socket as a certified p256 identity and send messages."""

from __future__ import annotations

import sys

import pynng

from certified.nng import tls_config


def send_messages(config_dir: str, url: str, alias: str, count: int) -> None:
    with pynng.Push0(tls_config=tls_config(config_dir, server=False, alias=alias),
                     send_timeout=20_000) as push:
        push.dial(url, block=True)
        for i in range(count):
            push.send(f"message {i}".encode())
    sys.exit(0)
