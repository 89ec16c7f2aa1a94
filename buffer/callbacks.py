"""Signed state-change callbacks: HMAC-SHA256 of the raw body in ``x-hub-signature-256``.

Posting happens on its own thread with retries and backoff; a callback that keeps failing is logged
and dropped, and never slows or stops the stream. A refusal (a 4xx answer such as 409 for a status
the receiver already has a newer one of) is logged and not retried.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import threading
import time
import urllib.error
import urllib.request

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-hub-signature-256"
RETRY_4XX = frozenset({408, 425, 429})  # the only client-error answers worth sending again


def sign(body: bytes, secret: str) -> str:
    """The header value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str | None) -> bool:
    """True when ``header`` is the signature of ``body`` under ``secret`` (constant-time compare)."""
    return header is not None and hmac.compare_digest(sign(body, secret), header)


class CallbackPoster:
    """POSTs JSON bodies to one URL in order, each retried with exponential backoff."""

    def __init__(self, url: str, secret: str | None, *, attempts: int = 5, first_delay: float = 0.5,
                 timeout: float = 5.0) -> None:
        self.url = url
        self.secret = secret
        self.attempts = attempts
        self.first_delay = first_delay
        self.timeout = timeout
        self.delivered = 0
        self.failed = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="callback-poster", daemon=True)
        self._thread.start()

    def post(self, body: bytes) -> None:
        self._queue.put(body)

    def close(self, timeout: float) -> None:
        """Deliver what is queued (bounded by ``timeout`` seconds), then stop."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("callback %s: gave up waiting for queued callbacks after %.0fs", self.url, timeout)

    def _run(self) -> None:
        while (body := self._queue.get()) is not None:
            if self._deliver(body):
                self.delivered += 1
            else:
                self.failed += 1

    def _deliver(self, body: bytes) -> bool:
        headers = {"content-type": "application/json"}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self.secret)
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    if response.status < 300:
                        return True
                    problem = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code not in RETRY_4XX:  # a refusal (403, 409, 422) stays one
                    log.warning("callback %s refused (%s): %s; not retried", self.url, problem,
                                exc.read(500).decode(errors="replace"))
                    return False
            except (OSError, urllib.error.URLError) as exc:
                problem = str(exc)
            if attempt < self.attempts:
                log.warning("callback %s failed (%s), attempt %d of %d; retrying in %.1fs",
                            self.url, problem, attempt, self.attempts, delay)
                time.sleep(delay)
                delay *= 2
            else:
                log.error("callback %s failed (%s) after %d attempts; dropped", self.url, problem, attempt)
        return False
