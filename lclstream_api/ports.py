"""The port pool: which ports of the configured range a new buffer may listen on."""

from __future__ import annotations

import random
import socket

from lclstream_api.settings import PortPoolConfig
from lclstream_api.store import TransferStore


def port_is_free(host: str, port: int) -> bool:
    """True when nothing on this machine listens on ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PortPool:
    """Hands out ports of a range, recorded in the store so a restarted service does not reuse them."""

    def __init__(self, config: PortPoolConfig, store: TransferStore, bind_host: str) -> None:
        self.config = config
        self.store = store
        self.bind_host = bind_host

    def allocate(self, transfer_id: str, count: int = 2) -> list[int]:
        candidates = list(range(self.config.start, self.config.end + 1))
        random.shuffle(candidates)  # spread transfers over the range; fewer clashes with stray listeners
        return self.store.allocate_ports(transfer_id, candidates, count,
                                         lambda p: port_is_free(self.bind_host, p))

    def release(self, transfer_id: str) -> None:
        self.store.release_ports(transfer_id)
