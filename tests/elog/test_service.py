"""The ELog service over real mutual TLS: ``lclstream-elog serve`` as its own process, callers with real
certificates (alice and bob are readers, daq is the writer, mallory's CA was never trusted)."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from certified.config import Layout
from certified.http import client as tls_client
from elog.client import ElogError
from elog.records import RunClose, RunOpen, RunState
from tests.elog.helpers import ElogService
from tests.fixtures.pki import Pki


def open_run(service: ElogService, experiment: str, **fields: object) -> int:
    with service.client("daq") as elog:
        record = elog.open_run(RunOpen(instrument="MFX", experiment=experiment, detectors=["jungfrau4M"],
                                       **fields))  # type: ignore[arg-type]
    return record.run


def test_the_writer_opens_and_closes_runs_numbered_in_order(service: ElogService) -> None:
    with service.client("daq") as elog:
        first = elog.open_run(RunOpen(instrument="MFX", experiment="mfxorder01", data_root="/data",
                                      params={"sample": "lysozyme"}))
        second = elog.open_run(RunOpen(instrument="MFX", experiment="mfxorder01"))
        assert (first.run, second.run) == (1, 2)
        assert first.run_dir == "/data/mfxorder01/r0001" and first.opened_by == "daq"
        closed = elog.close_run("mfxorder01", 1, RunClose(event_count=42, files=["/data/a.h5"]))
        assert closed.state == RunState.CLOSED and closed.event_count == 42 and closed.stop_time
        assert elog.close_run("mfxorder01", 1, RunClose(event_count=42, files=["/data/a.h5"])) == closed, \
            "closing again with the same figures is a harmless retry"
        with pytest.raises(ElogError) as err:
            elog.close_run("mfxorder01", 1, RunClose(event_count=7))
        assert err.value.status == 409 and "closed already" in str(err.value)
        with pytest.raises(ElogError) as err:
            elog.open_run(RunOpen(instrument="MFX", experiment="mfxorder01", run=2))
        assert err.value.status == 409
    with service.client("alice") as elog:
        runs = elog.runs(experiment="mfxorder01")
        assert [(r.run, r.state) for r in runs] == [(2, RunState.OPEN), (1, RunState.CLOSED)]
        assert [r.run for r in elog.runs(experiment="mfxorder01", state="open")] == [2]
        assert elog.get("mfxorder01", 1).params == {"sample": "lysozyme"}


def test_only_writers_open_and_close_runs_and_refusals_are_logged(service: ElogService) -> None:
    run = open_run(service, "mfxwriters01")
    with service.client("alice") as elog:
        with pytest.raises(ElogError) as err:
            elog.open_run(RunOpen(instrument="MFX", experiment="mfxwriters01"))
        assert err.value.status == 403 and "alice may not open or close runs" in str(err.value)
        with pytest.raises(ElogError) as err:
            elog.close_run("mfxwriters01", run, RunClose(event_count=1))
        assert err.value.status == 403
        assert elog.get("mfxwriters01", run).state == RunState.OPEN, "a refused close changes nothing"
    assert "refused POST /runs from alice: not one of the writers (daq)" in service.log()
    assert f"refused POST /runs/mfxwriters01/{run}/close from alice" in service.log()


def test_annotations_are_written_by_the_caller_and_read_back(service: ElogService) -> None:
    run = open_run(service, "mfxnotes01")
    summary = {"transfer": "t-123", "events": 3600, "complete": True, "ranks": [0, 1]}
    with service.client("alice") as elog:
        note = elog.annotate("mfxnotes01", run, "streamed to S3DF", body=summary)
        assert note.author == "alice" and note.body == summary
    with service.client("bob") as elog:
        elog.annotate("mfxnotes01", run, "looks good")
        record = elog.get("mfxnotes01", run)
    assert [(n.author, n.text, n.body) for n in record.annotations] == [
        ("alice", "streamed to S3DF", summary), ("bob", "looks good", None)]
    with tls_client("elog", service.pki.user_dir("bob")) as raw:  # the author cannot be chosen in the body
        answer = raw.post(f"/runs/mfxnotes01/{run}/annotations", json={"text": "x", "author": "daq"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "author"]


def test_unknown_runs_are_404(service: ElogService) -> None:
    with service.client("alice") as elog:
        with pytest.raises(ElogError) as err:
            elog.get("mfxnothing01", 5)
        assert err.value.status == 404 and "no run 5 in experiment 'mfxnothing01'" in str(err.value)
        with pytest.raises(ElogError) as err:
            elog.annotate("mfxnothing01", 5, "hello")
        assert err.value.status == 404
    with service.client("daq") as elog, pytest.raises(ElogError) as err:
        elog.close_run("mfxnothing01", 5, RunClose(event_count=0))
    assert err.value.status == 404


@pytest.mark.parametrize(("method", "path", "body", "locations"), [
    ("POST", "/runs", {"instrument": "MFX", "experiment": "bad name!", "run": -1},
     [["body", "experiment"], ["body", "run"]]),
    ("POST", "/runs", {"experiment": "mfx01", "params": [1, 2]}, [["body", "instrument"], ["body", "params"]]),
    ("POST", "/runs", {"instrument": "MFX", "experiment": "mfx01", "run_dir": "/a", "data_root": "/b"}, [["body"]]),
    ("POST", "/runs/mfx01/1/close", {"event_count": "many"}, [["body", "event_count"]]),
    ("POST", "/runs/mfx01/1/annotations", {"body": {"a": 1}}, [["body", "text"]]),
    ("POST", "/runs/mfx01/1/annotations", {"text": "x", "body": [1]}, [["body", "body"]]),
    ("GET", "/runs/mfx01/one", None, [["path", "run"]]),
    ("GET", "/runs/bad%20name/1", None, [["path", "experiment"]]),
    ("GET", "/runs?state=running", None, [["query", "state"]]),
])
def test_bad_input_is_422_with_field_paths(service: ElogService, method: str, path: str, body: object,
                                           locations: list[list[str]]) -> None:
    with tls_client("elog", service.pki.user_dir("daq")) as raw:
        answer = raw.request(method, path, json=body)
    assert answer.status_code == 422, answer.text
    assert [err["loc"] for err in answer.json()["detail"]] == locations


def test_a_caller_without_a_trusted_certificate_is_refused(service: ElogService, pki: Pki) -> None:
    ca = ssl.create_default_context(cadata=pki.server_ca_pem.decode())
    with httpx.Client(base_url=service.url, verify=ca) as anonymous, pytest.raises(httpx.HTTPError):
        anonymous.get("/runs")
    with tls_client(service.url, pki.user_dir("mallory")) as foreign, pytest.raises(httpx.HTTPError):
        foreign.get("/runs")
    reasons = [e.get("reason") for e in service.log_events() if e.get("event") == "handshake refused"]
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in reasons, reasons
    assert "CERTIFICATE_VERIFY_FAILED" in reasons, reasons


def test_the_openapi_document_lists_every_route(service: ElogService) -> None:
    with tls_client("elog", service.pki.user_dir("alice")) as raw:
        document = raw.get("/openapi.json").json()
    assert set(document["paths"]) == {"/runs", "/runs/{experiment}/{run}", "/runs/{experiment}/{run}/close",
                                      "/runs/{experiment}/{run}/annotations"}
    assert set(document["paths"]["/runs"]) == {"get", "post"}


def test_a_restarted_service_keeps_its_runs(service: ElogService) -> None:
    run = open_run(service, "mfxrestart01", data_root="/data")
    with service.client("bob") as elog:
        elog.annotate("mfxrestart01", run, "before the restart", body={"n": 1})
        before = elog.get("mfxrestart01", run)
    assert service.restart() == 0, "SIGTERM stops the service cleanly"
    with service.client("bob") as elog:
        assert elog.get("mfxrestart01", run) == before
    with service.client("daq") as elog:
        assert elog.open_run(RunOpen(instrument="MFX", experiment="mfxrestart01")).run == run + 1


def test_the_service_logs_its_resolved_paths(service: ElogService) -> None:
    database = Path(service.database).resolve()
    assert database.is_file()
    line = next(line for line in service.log().splitlines() if "lclstream-elog: config" in line)
    assert f"database={database}" in line, "the relative database path is resolved against the config's folder"
    assert f"certified_config={Layout(service.pki.server_dir).root}" in line
    assert "writers daq" in line and "request bodies up to 1048576 bytes" in line


def test_an_oversized_or_non_finite_body_is_refused(service: ElogService) -> None:
    run = open_run(service, "mfxguard01")
    with tls_client("elog", service.pki.user_dir("alice")) as raw:
        big = raw.post(f"/runs/mfxguard01/{run}/annotations", json={"text": "x" * (2 << 20)})
        nan = raw.post(f"/runs/mfxguard01/{run}/annotations", content=b'{"text": "x", "body": {"v": NaN}}',
                       headers={"content-type": "application/json"})
    assert big.status_code == 413 and len(big.content) < 2000
    assert nan.status_code == 422 and nan.json()["detail"][0]["loc"] == ["body", "body", "v"]
    with service.client("alice") as elog:
        assert elog.get("mfxguard01", run).annotations == [], "nothing was written"
