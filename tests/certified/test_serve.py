"""``certified serve`` with real mutual TLS 1.3 on loopback: who gets in, who is refused, and where."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest

from certified import ca, http, identity, intro, tls, trust
from certified.config import Layout
from certified.signature import verify
from tests.certified.procs import Served, cli, wait_for
from tests.fixtures.pki import Pki, make_identity

REQUEST = b"GET /whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def raw_exchange(ctx: ssl.SSLContext, port: int, server_hostname: str = "127.0.0.1") -> bytes:
    """Handshake, send one request, read the answer; TLS refusals surface as ssl.SSLError."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as conn:
            conn.sendall(REQUEST)
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            return data


def assert_refused(ctx: ssl.SSLContext, served: Served, reason: str, **kwargs: str) -> None:
    before, refused = len(served.access_lines()), len(served.refusals())
    with pytest.raises(ssl.SSLError) as info:
        raw_exchange(ctx, served.port, **kwargs)
    assert reason in str(info.value).lower()
    time.sleep(0.3)
    assert len(served.access_lines()) == before, "a refused connection reached the app"
    wait_for(lambda: len(served.refusals()) > refused, "server logged the refused handshake")


def test_trusted_client_gets_200_and_app_sees_its_name(module_pki: Pki, served: Served) -> None:
    for user in ("alice", "bob"):
        with http.client("api", module_pki.user_dir(user)) as c:
            r = c.get("/whoami")
        assert r.status_code == 200
        assert r.json() == {"caller": user, "issuer": "api CA", "trusted_as": "own CA", "admin": user == "alice"}
    line = wait_for(lambda: [x for x in served.access_lines() if x["caller"] == "bob"], "access log line")[0]
    assert (line["method"], line["path"], line["status"]) == ("GET", "/whoami", 200)


def test_raw_tls13_handshake_with_trusted_certificate(module_pki: Pki, served: Served) -> None:
    ctx = tls.client_context(module_pki.user_dir("alice"), alias="api")
    answer = raw_exchange(ctx, served.port)
    assert answer.startswith(b"HTTP/1.1 200")
    assert b'"caller":"alice"' in answer


def test_async_client(module_pki: Pki, served: Served) -> None:
    import asyncio

    async def go() -> httpx.Response:
        async with http.async_client("api", module_pki.user_dir("alice")) as c:
            return await c.post("/echo", content=b"hi")

    r = asyncio.run(go())
    assert r.json() == {"caller": "alice", "body": "hi"}


def test_no_client_certificate_is_refused_at_handshake(module_pki: Pki, served: Served) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=module_pki.server_ca_pem.decode())
    assert_refused(ctx, served, "certificate required")


def test_certificate_from_another_ca_is_refused_at_handshake(module_pki: Pki, served: Served) -> None:
    ctx = tls.client_context(module_pki.user_dir("mallory"), alias="api")
    assert_refused(ctx, served, "unknown ca")
    with pytest.raises(httpx.HTTPError), http.client("api", module_pki.user_dir("mallory")) as c:
        c.get("/whoami")


def test_expired_certificate_is_refused_at_handshake(module_pki: Pki, served: Served, tmp_path: Path) -> None:
    eve = make_identity(tmp_path / "eve", "eve")
    ca_key, ca_cert = identity.ca_signer(module_pki.server_dir)
    public = ca.load_cert(Layout(eve).id_cert.read_bytes()).public_key()
    old = ca.issue(ca_key, ca_cert, public, "eve", days=1,  # type: ignore[arg-type]
                   not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    intro.add_intro(intro.Introduction(name="eve", signer="api", certificate=ca.cert_pem(old).decode(),
                                       ca_certificate=ca.cert_pem(ca_cert).decode(),
                                       services={"api": served.url}), eve)
    assert_refused(tls.client_context(eve, alias="api"), served, "certificate expired")


def test_server_certificate_for_another_name_is_refused_by_client(module_pki: Pki, served: Served) -> None:
    ctx = tls.client_context(module_pki.user_dir("alice"), alias="api")
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        raw_exchange(ctx, served.port, server_hostname="data.elsewhere.example")
    assert "hostname mismatch" in str(info.value).lower()


def test_server_signed_by_untrusted_ca_is_refused_by_client(served: Served, tmp_path: Path) -> None:
    stranger = make_identity(tmp_path / "stranger", "stranger")
    other_ca = make_identity(tmp_path / "other", "other")
    trust.add_service("api", served.url, Layout(other_ca).ca_cert.read_bytes(), stranger)
    with pytest.raises(ssl.SSLCertVerificationError):
        raw_exchange(tls.client_context(stranger, alias="api"), served.port)


def test_certified_message_cli(module_pki: Pki, served: Served, tmp_path: Path) -> None:
    env = module_pki.env("alice")
    done = cli("message", "api/whoami", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"caller": "alice", "issuer": "api CA", "trusted_as": "own CA", "admin": True}
    assert done.stdout.startswith("{\n  ")  # pretty-printed

    body = tmp_path / "body.json"
    body.write_text('{"run": 7}')
    done = cli("message", f"{served.url}/echo", "--json", str(body), "-H", "X-Trace: 1", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"caller": "alice", "body": '{"run": 7}'}

    done = cli("message", "api/nowhere", env=env)
    assert done.returncode == 1 and "HTTP 404" in done.stderr

    done = cli("message", "nosuch/whoami", env=env)
    assert done.returncode == 2 and "unknown service alias 'nosuch'" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1

    done = cli("message", "api/whoami", "-H", "no colon", env=env)
    assert done.returncode == 2 and "'Name: value'" in done.stderr


def test_signed_callbacks_over_mutual_tls(module_pki: Pki, served: Served) -> None:
    from certified.callbacks import encode, post_signed

    ctx = tls.client_context(module_pki.user_dir("bob"), alias="api")
    payload = {"job": "j1", "state": "completed"}
    assert post_signed(f"{served.url}/hook", payload, "s3cret", verify=ctx)
    assert post_signed(f"{served.url}/flaky-hook", {"state": "active"}, "s3cret", verify=ctx, backoff=0.05)
    with http.client("api", module_pki.user_dir("bob")) as c:
        got = c.get("/hooks").json()
    assert [g["body"] for g in got] == [encode(payload).decode(), encode({"state": "active"}).decode()]
    for g in got:
        assert g["caller"] == "bob"
        assert verify(g["body"].encode(), "s3cret", g["signature"])
        assert not verify(g["body"].encode(), "wrong", g["signature"])
    # 4xx other than 408/425/429 is final; refused identity and closed port fail without raising
    assert not post_signed(f"{served.url}/nowhere", payload, "s3cret", verify=ctx, backoff=0.01)
    mallory = tls.client_context(module_pki.user_dir("mallory"), alias="api")
    assert not post_signed(f"{served.url}/hook", payload, None, verify=mallory, attempts=2, backoff=0.01)
