"""nng-stream's file paths are absolute from the start and logged; a refused callback is not sent again.

A refusal (409 from LCLStream-API for a status it already has a newer one of) is final: retrying it
would only delay the buffer's exit while it flushes its callbacks.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from buffer.status import BufferStatus
from tests.buffer.helpers import NNG_STREAM
from tests.fixtures.net import free_port


@contextmanager
def refusing_receiver(status: int) -> Iterator[tuple[str, list[bytes]]]:
    """A real HTTP server on loopback answering every POST with ``status``; yields its URL and the bodies."""
    posts: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            posts.append(self.rfile.read(int(self.headers.get("content-length", "0"))))
            body = b'{"detail": "state is earlier than the recorded one"}'
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cb", posts
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_relative_status_file_is_resolved_logged_and_refusals_not_retried(tmp_path: Path) -> None:
    start_dir = tmp_path / "run"
    start_dir.mkdir()
    (tmp_path / "state").mkdir()
    with refusing_receiver(409) as (url, posts):
        done = subprocess.run([NNG_STREAM, "--recv", f"tcp://127.0.0.1:{free_port()}",
                               "--send", f"tcp://127.0.0.1:{free_port()}", "--status-file", "../state/status.json",
                               "--idle-timeout", "1", "--callback", url, "--cb-secret", "s"],
                              cwd=start_dir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr  # failed: no producer within the idle timeout
    assert BufferStatus.model_validate_json((tmp_path / "state" / "status.json").read_text()).state.value == "failed"
    assert f"status file {tmp_path / 'state' / 'status.json'}" in done.stderr
    states = [BufferStatus.model_validate_json(body).state.value for body in posts]
    assert states == ["waiting", "failed"], "each refused callback was posted exactly once"
    assert done.stderr.count("refused (HTTP 409)") == 2 and "not retried" in done.stderr
    assert "retrying" not in done.stderr
