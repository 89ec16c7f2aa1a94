"""Control-plane hardening, tried as an attacker would against real service processes on loopback.

A real ``psik-api`` and a real ``lclstream-api`` (local Psi-k jobs, nng-stream, mpiexec) run under
real mutual TLS; requests go over raw TLS sockets where an ordinary client would hide what is
tested (a declared 10 GiB body, a chunked body that never ends). Every refusal is asserted by its
status code and message, and by nothing having changed for the legitimate user afterwards.
"""

from __future__ import annotations

import getpass
import json
import socket
import sqlite3
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from certified.http import client as tls_client
from certified.signature import sign
from certified.tls import client_context
from psik.client import PsikClient
from tests.fixtures.pki import Pki, make_pki
from tests.lclstream_api.harness import VENV_BIN, Service, env_with_venv, synthetic_config, wait_for
from tests.psik.helpers import psik_api

LIMIT = 1 << 20  # the default max_body_bytes of every service
SMALL_ANSWER = 4096  # an error answer, whatever the input, stays below this many bytes


# ---- raw HTTP/1.1 over (mutual) TLS --------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _read_answer(conn: socket.socket) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before an answer: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return Answer(int(lines[0].split()[1]), headers, body[:length])


def _exchange(conn: socket.socket, head: bytes, chunks: list[bytes]) -> tuple[Answer, bool]:
    """Send ``head`` and ``chunks``, read one answer; also say whether the server then closed."""
    conn.sendall(head)
    for chunk in chunks:
        conn.sendall(chunk)
    answer = _read_answer(conn)
    conn.settimeout(10)
    try:
        closed = conn.recv(1) == b""
    except (ConnectionResetError, ssl.SSLError):
        closed = True
    except TimeoutError:
        closed = False
    return answer, closed


def raw_tls(pki: Pki, user: str, alias: str, port: int, head: bytes, chunks: list[bytes] | None = None,
            ) -> tuple[Answer, bool]:
    ctx = client_context(pki.user_dir(user), alias=alias)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            return _exchange(conn, head, chunks or [])


def raw_plain(port: int, head: bytes, chunks: list[bytes] | None = None) -> tuple[Answer, bool]:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        return _exchange(conn, head, chunks or [])


def post_head(path: str, *, length: int | None = None, chunked: bool = False, extra: str = "") -> bytes:
    framing = "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {length}\r\n"
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{framing}{extra}\r\n").encode()


def chunked(total: int, size: int = 64 * 1024) -> list[bytes]:
    """``total`` bytes of a JSON-looking body as HTTP chunks, without the final empty chunk."""
    out, sent = [], 0
    while sent < total:
        n = min(size, total - sent)
        out.append(f"{n:x}\r\n".encode() + b" " * n + b"\r\n")
        sent += n
    return out


def assert_small_refusal(response: httpx.Response | Answer, status: int, *needles: str) -> Any:
    code = response.status_code if isinstance(response, httpx.Response) else response.status
    body = response.content if isinstance(response, httpx.Response) else response.body
    assert code == status, body[:500]
    assert len(body) < SMALL_ANSWER, f"error answer of {len(body)} bytes"
    text = body.decode()
    for needle in needles:
        assert needle in text, text
    return json.loads(body)


def log_events(log: Path, event: str) -> list[dict[str, Any]]:
    """The JSON lines of ``log`` whose ``event`` is ``event``."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"{event}"' in line:
            out.append(json.loads(line))
    return out


def locs(detail: list[dict[str, Any]]) -> list[list[Any]]:
    return [d["loc"] for d in detail]


# ---- Psik-API --------------------------------------------------------------------------------------------
@dataclass
class PsikApi:
    port: int
    pki: Pki
    log: Path

    def client(self, user: str) -> PsikClient:
        return PsikClient("psik", self.pki.user_dir(user))

    def raw(self, user: str) -> httpx.Client:
        return tls_client("psik", self.pki.user_dir(user), timeout=60)

    def job_ids(self, user: str) -> list[str]:
        with self.client(user) as c:
            return [j.jobid for j in c.list(limit=10_000).jobs]


@pytest.fixture(scope="module")
def psik(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PsikApi]:
    root = tmp_path_factory.mktemp("psik-hardening")
    pki = make_pki(root, server="psik", users=("alice", "bob"))
    config = root / "psik.yaml"
    me = getpass.getuser()
    config.write_text(yaml.safe_dump({"prefix": "jobs", "backends": {"default": {"type": "local"}},
                                      "accounts": {"alice": me, "bob": me}}))
    log = root / "psik-api.log"
    with psik_api(config, pki.server_dir, log) as url:
        pki.add_service_alias("psik", url)
        yield PsikApi(int(url.rsplit(":", 1)[1]), pki, log)


def test_psik_declared_body_over_limit_is_413_before_reading(psik: PsikApi) -> None:
    before = psik.job_ids("alice")
    answer, closed = raw_tls(psik.pki, "alice", "psik", psik.port, post_head("/v1/jobs", length=10 << 30))
    detail = assert_small_refusal(answer, 413, str(LIMIT), "max_body_bytes")["detail"]
    assert "10737418240 bytes" in detail
    assert closed, "the connection stays open for a body that will never be read"
    assert psik.job_ids("alice") == before
    wait_for(lambda: [r for r in log_events(psik.log, "request refused")
                      if (r["status"], r["caller"], r["path"]) == (413, "alice", "/v1/jobs")], 10, what="refusal logged")


def test_psik_streamed_body_over_limit_is_413_at_the_limit(psik: PsikApi) -> None:
    """A chunked body is counted as it arrives: refused once past the limit, though it never ends."""
    before = psik.job_ids("alice")
    answer, closed = raw_tls(psik.pki, "alice", "psik", psik.port, post_head("/v1/jobs", chunked=True),
                             chunked(LIMIT + 64 * 1024))
    assert_small_refusal(answer, 413, f"more than {LIMIT} bytes")
    assert closed
    assert psik.job_ids("alice") == before


def test_psik_body_under_limit_is_served(psik: PsikApi) -> None:
    script = "exit 0\n" + "#" * 990_000 + "\n"  # near both the body limit and JobSpec.script's length
    with psik.raw("alice") as http:
        response = http.post("/v1/jobs", json={"name": "big", "script": script})
    assert response.status_code == 201, response.text[:500]
    with psik.client("alice") as c:
        assert c.get(response.json()["jobid"]).spec.script == script


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_psik_nan_and_infinity_are_422_naming_the_field(psik: PsikApi, number: str) -> None:
    before = psik.job_ids("alice")
    body = '{"script": "exit 0", "resources": {"duration": DURATION, "process_count": 1}}'.replace("DURATION", number)
    with psik.raw("alice") as http:
        response = http.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    detail = assert_small_refusal(response, 422, "NaN and Infinity are not allowed")["detail"]
    assert locs(detail) == [["body", "resources", "duration"]]
    assert psik.job_ids("alice") == before


def test_psik_errors_never_echo_large_inputs(psik: PsikApi) -> None:
    huge = "x" * 500_000
    with psik.raw("alice") as http:
        bad_name = http.post("/v1/jobs", json={"name": huge, "script": "exit 0"})
        detail = assert_small_refusal(bad_name, 422)["detail"]
        assert locs(detail) == [["body", "name"]] and huge[:100] not in bad_name.text
        unknown_key = http.post("/v1/jobs", json={"script": "exit 0", huge: 1})
        assert_small_refusal(unknown_key, 422, "more characters")
        many = http.post("/v1/jobs", json={"script": "exit 0", "attributes": {f"k{i}": i for i in range(5000)}})
        detail = assert_small_refusal(many, 422, "and 4980 more errors")["detail"]
        assert locs(detail)[0] == ["body", "attributes", "k0"]
        bad_id = http.get("/v1/jobs/" + "7" * 3000)
        assert_small_refusal(bad_id, 400, "is not a job id", "3000 characters")
        listing = http.get("/v1/jobs", params={"limit": huge[:6000]})
        assert_small_refusal(listing, 422, "limit")


BAD_BODIES: list[bytes] = [
    b"", b"null", b"[]", b"123", b'"text"', b"{", b"\xff\xfe\x00", b"[" * 100_000, b'{"script": ' + b"9" * 5000 + b"}",
    b'{"script": null}', b'{"script": 5}', b'{"script": "\\ud800"}', b'{"script": "x", "resources": "all"}',
    b'{"script": "x", "environment": {"\\ud800": "v"}}', b'{"script": "x", "\\ud800": 1}',
    b'{"script": "x", "environment": {"A": null}}', b'{"script": "x", "resources": {"process_count": 1e308}}',
    b'{"script": "x", "resources": {"duration": -0.0}}', b'{"script": "x", "callback": "http://' + b"a" * 5000 + b'"}',
    b'{"script": "x", "backend": "../../etc"}', b'{"script": "x", "directory": "../../.."}',
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_psik_no_input_gets_a_500(psik: PsikApi, body: bytes) -> None:
    with psik.raw("alice") as http:
        response = http.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert len(response.content) < SMALL_ANSWER


# ---- LCLStream-API ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lcls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("lclstream-hardening")
    pki = make_pki(root, server="lclstream-api", users=("alice", "bob", "admin"))
    service = Service(root / "svc", pki, overrides={"limits": {"concurrent_per_user": 4}})
    try:
        service.start()
        yield service
    finally:
        service.stop()
        service.cleanup_jobs()
        print("---- lclstream-api log (last 60 lines) ----")
        print("\n".join([line for line in service.log_text().splitlines() if '"caller"' not in line][-60:]))


def _stored_row(service: Service, transfer_id: str) -> str:
    with sqlite3.connect(Path(service.settings["state_dir"]) / "transfers.sqlite") as db:
        return str(db.execute("SELECT record FROM transfers WHERE id = ?", (transfer_id,)).fetchone()[0])


def _transfer_ids(service: Service, user: str) -> list[str]:
    with service.client(user) as api:
        return [t.id for t in api.list()]


def test_lclstream_both_listeners_refuse_large_bodies_with_413(lcls: Service) -> None:
    before = _transfer_ids(lcls, "alice")
    answer, closed = raw_tls(lcls.pki, "alice", "lclstream", lcls.port, post_head("/v1/transfers", length=1 << 40))
    assert_small_refusal(answer, 413, str(LIMIT))
    assert closed
    callback_port = int(lcls.settings["callback_listen"].rsplit(":", 1)[1])
    answer, closed = raw_plain(callback_port, post_head("/v1/callbacks/buffer?transfer=x", length=LIMIT + 1))
    assert_small_refusal(answer, 413, str(LIMIT))
    assert closed
    assert _transfer_ids(lcls, "alice") == before
    refused = wait_for(lambda: {(r["caller"], r["path"]) for r in log_events(lcls.log_path, "request refused")
                                if r["status"] == 413}, 10, what="refusals logged")
    assert {("alice", "/v1/transfers"), (None, "/v1/callbacks/buffer")} <= refused


def test_lclstream_nan_or_broken_text_anywhere_in_a_request_is_422_with_its_path(lcls: Service) -> None:
    before = _transfer_ids(lcls, "alice")
    body = json.dumps({"config": synthetic_config(), "options": {"idle_timeout": 30}})
    body = body.replace('"idle_timeout": 30', '"idle_timeout": NaN').replace('"seed": 7}', '"seed": 7, "x": -Infinity}')
    with lcls.client("alice").http as http:
        response = http.post("/v1/transfers", content=body, headers={"content-type": "application/json"})
    detail = assert_small_refusal(response, 422, "NaN and Infinity are not allowed")["detail"]
    assert sorted(locs(detail)) == [["body", "config", "event_source", "x"], ["body", "options", "idle_timeout"]]
    not_text = json.dumps({"config": {**synthetic_config(), "source_identifier": "run \udfff"}})
    with lcls.client("alice").http as http:
        response = http.post("/v1/transfers", content=not_text, headers={"content-type": "application/json"})
    detail = assert_small_refusal(response, 422, "unpaired UTF-16 surrogate")["detail"]
    assert locs(detail) == [["body", "config", "source_identifier"]]
    assert _transfer_ids(lcls, "alice") == before


def test_lclstream_errors_never_echo_large_inputs(lcls: Service) -> None:
    huge = "b" * 400_000
    with lcls.client("alice").http as http:
        backend = http.post("/v1/transfers", json={"config": synthetic_config(), "options": {"backend": huge}})
        detail = assert_small_refusal(backend, 422, "is not offered", "400000 characters")["detail"]
        assert locs(detail) == [["body", "options", "backend"]]
        config = synthetic_config()
        config["data_handlers"][0]["type"] = huge
        tag = http.post("/v1/transfers", json={"config": config})
        assert_small_refusal(tag, 422, "more characters", "'NNGPushDataHandler'")  # the choices stay whole
        missing = http.get("/v1/transfers/" + "f" * 5000)
        assert_small_refusal(missing, 404, "no transfer", "5000 characters")


def _lcls_bad_bodies() -> list[bytes]:
    cfg = synthetic_config()
    variants: list[Any] = [
        None, [], {"config": None}, {"config": "x"}, {"config": {}}, {"config": cfg, "options": None},
        {"config": cfg, "options": {"ranks": 10**30}}, {"config": cfg, "options": {"idle_timeout": "soon"}},
        {"config": cfg, "options": {"backend": ""}}, {"config": cfg, "options": {"tls": "maybe"}},
        {"config": {**cfg, "data_sources": {"\ud800": {"type": "EventTimestamp"}}}},
        {"config": {**cfg, "source_identifier": "run \udfff"}},
        {"config": {**cfg, "processing_pipeline": [{"type": "BatchProcessingPipeline", "batch_size": 10**20}]}},
        {"config": {**cfg, "event_source": {"type": "SyntheticEventSource", "number_of_events": -1}}},
        {"config": {**cfg, "data_handlers": "all"}},
    ]
    return [json.dumps(v).encode() for v in variants] + [  # lone surrogates go out as \udXXX escapes
        b"[" * 50_000, b'{"config": ' + b"7" * 5000 + b"}", b"\xc3\x28", b'{"config": {"a": 1e999}}']


LCLS_BAD_BODIES = _lcls_bad_bodies()


@pytest.mark.parametrize("body", LCLS_BAD_BODIES, ids=range(len(LCLS_BAD_BODIES)))
def test_lclstream_no_input_gets_a_500(lcls: Service, body: bytes) -> None:
    before = _transfer_ids(lcls, "alice")
    with lcls.client("alice").http as http:
        response = http.post("/v1/transfers", content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert len(response.content) < SMALL_ANSWER
    assert _transfer_ids(lcls, "alice") == before


def test_idempotency_key_reused_with_another_body_is_409(lcls: Service, tmp_path: Path) -> None:
    key = f"mfxl1023922:run{time.monotonic_ns()}"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(synthetic_config(events=8)))
    env = env_with_venv({**lcls.pki.env("alice"), "LCLSTREAM_SERVER": "lclstream"})

    def request(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(VENV_BIN / "lclstream"), "request", str(cfg), "--idempotency-key", key, *extra],
                              env=env, capture_output=True, text=True, timeout=120)

    first = request()
    assert first.returncode == 0, first.stderr
    again = request()  # a retry of the same request: the same transfer
    assert again.returncode == 0, again.stderr
    with lcls.client("alice") as api:
        mine = [t for t in api.list() if t.id in first.stdout]
        assert len(mine) == 1 and mine[0].id in again.stdout
        before = _transfer_ids(lcls, "alice")
        other = request("--ranks", "2")
        assert other.returncode == 3, (other.returncode, other.stderr)
        assert f"was already used for transfer {mine[0].id} with a different request body" in other.stderr
        assert "Traceback" not in other.stderr
        assert _transfer_ids(lcls, "alice") == before
        with lcls.client("alice").http as http:  # the same through the API: 409 with the message
            body = {"config": synthetic_config(events=9)}
            response = http.post("/v1/transfers", json=body, headers={"Idempotency-Key": key})
            assert_small_refusal(response, 409, "Idempotency-Key", "different request body")
            long_key = http.post("/v1/transfers", json=body, headers={"Idempotency-Key": "x" * 300})
            assert_small_refusal(long_key, 422, "idempotency-key")  # the header is bounded too
        api.cancel(mine[0].id)


def _signed_post(service: Service, kind: str, transfer_id: str, body: dict[str, Any]) -> httpx.Response:
    secret = yaml.safe_load(_stored_row(service, transfer_id))["cb_secret"]
    raw = json.dumps(body).encode()
    url = f"{service.settings['callback_listen']}/v1/callbacks/{kind}?transfer={transfer_id}"
    with httpx.Client(timeout=30) as http:
        return http.post(url, content=raw, headers={"x-hub-signature-256": sign(raw, secret),
                                                    "content-type": "application/json"})


def _buffer_status(recorded: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**recorded, **changes}


def test_signed_callbacks_that_would_move_a_transfer_back_are_409(lcls: Service) -> None:
    with lcls.client("alice") as api:
        view = api.request(synthetic_config(events=4000), {"idle_timeout": 120})
        # live: producers connected, no consumer; the buffer says "streaming"
        wait_for(lambda: (v := api.status(view.id)).metrics is not None and v.metrics.state.value == "streaming",
                 120, what="buffer streaming")
        live = yaml.safe_load(_stored_row(lcls, view.id))
        earlier = _signed_post(lcls, "buffer", view.id, _buffer_status(live["buffer_status"], state="waiting",
                                                                          time=time.time() + 3600))
        assert_small_refusal(earlier, 409, "'waiting' is earlier than the recorded 'streaming'")
        now = api.status(view.id)
        assert now.state.value == "streaming" and now.metrics is not None and now.metrics.state.value == "streaming"
        api.cancel(view.id)

        def settled() -> bool:
            rec = yaml.safe_load(_stored_row(lcls, view.id))
            final = rec["buffer_status"] is not None and rec["buffer_status"]["state"] in ("canceled", "failed", "done")
            return final and rec["ports_released"] and all(
                j["state"] in ("completed", "failed", "canceled") for j in rec["jobs"].values())

        wait_for(settled, 90, what="transfer and its jobs ended")
        row = _stored_row(lcls, view.id)
        rec = json.loads(row)
        recorded, buffer_job = rec["buffer_status"], rec["jobs"]["buffer"]
        other_final = "done" if recorded["state"] != "done" else "failed"
        refusals = [
            ("buffer", _buffer_status(recorded, state="streaming", time=time.time() + 10), "is earlier than"),
            ("buffer", _buffer_status(recorded, state=other_final, time=time.time() + 10), "already ended"),
            ("buffer", _buffer_status(recorded, time=recorded["time"] - 5), "older than the recorded"),
            ("job", {"jobid": buffer_job["jobid"], "jobndx": 1, "state": "active"}, "is earlier than"),
            ("job", {"jobid": buffer_job["jobid"], "jobndx": 1,
                     "state": "completed" if buffer_job["state"] != "completed" else "failed"}, "already ended"),
        ]
        for kind, body, why in refusals:
            assert_small_refusal(_signed_post(lcls, kind, view.id, body), 409, why)
        malformed = _signed_post(lcls, "buffer", view.id, {"state": "rewound"})
        assert_small_refusal(malformed, 422, "state")
        assert _signed_post(lcls, "buffer", view.id, recorded).status_code == 204  # a repeat changes nothing
        time.sleep(2 * lcls.settings["poll_interval"] + 1)  # let the reconciler run over whatever was queued
        assert _stored_row(lcls, view.id) == row, "a refused callback changed the record"
        assert api.status(view.id).state.value == "canceled"
    log = lcls.log_text()
    assert f"transfer {view.id}: buffer callback refused (409)" in log
    assert f"transfer {view.id}: job callback refused (409)" in log
