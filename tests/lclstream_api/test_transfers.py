"""Whole transfers through real processes: lclstream-api, Psi-k local jobs, nng-stream, mpiexec lclstreamer."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from lclstream_api.receive import LEDGER_FILE, ledger_from_json, merge_ledgers, parse_filename, pull
from lclstream_api.states import TransferState
from lclstream_api.transport import open_transfer
from tests.fixtures.pki import Pki
from tests.lclstream_api.harness import VENV_BIN, Service, env_with_venv, synthetic_config, wait_for

TERMINAL = {"completed", "failed", "canceled"}


def _state(service: Service, user: str, transfer_id: str) -> str:
    with service.client(user) as api:
        return api.status(transfer_id).state.value


def _wait_state(service: Service, transfer_id: str, states: set[str], timeout: float = 90.0) -> str:
    return wait_for(lambda: (s := _state(service, "alice", transfer_id)) in states and s, timeout,
                    what=f"transfer {transfer_id} in {states}")


def _pull(service: Service, transfer_id: str, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    """``lclstream pull ID`` as alice: it fetches her data credentials, then pulls."""
    return subprocess.Popen([str(VENV_BIN / "lclstream"), "pull", transfer_id, "--server", "lclstream", "--out",
                             str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env_with_venv({"CERTIFIED_CONFIG": str(service.pki.user_dir("alice"))}))


def _finish(proc: subprocess.Popen[bytes], timeout: float = 120.0) -> tuple[int, str]:
    try:
        _out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate(timeout=10)
    return proc.returncode, err.decode(errors="replace")


def _pulse_ids(directory: Path) -> list[int]:
    ids: list[int] = []
    for path in sorted(directory.glob("*.h5")):
        assert parse_filename(path.name) is not None
        with h5py.File(path, "r") as f:
            ids.extend(int(v) for v in np.asarray(f["/data/pulse_id"]).ravel())
    return ids


def gated_mpirun(directory: Path) -> tuple[Path, Path]:
    """A launcher that starts the real mpiexec only once the gate file exists (at most 60 s later)."""
    gate, launcher = directory / "gate", directory / "gated-mpirun"
    launcher.write_text(f"#!/bin/sh\nfor i in $(seq 600); do [ -e {gate} ] && break; sleep 0.1; done\n"
                        f'exec {VENV_BIN / "mpiexec"} "$@"\n')
    launcher.chmod(0o755)
    return gate, launcher


@pytest.mark.parametrize("links", [1, 2])
def test_full_transfer_two_ranks_two_consumers(tmp_path: Path, api_pki: Pki, links: int) -> None:
    """Two consumers (each with ``links`` connections to the buffer) share the stream."""
    events = 48
    gate, launcher = gated_mpirun(tmp_path)
    backends = {"default": {"type": "local"}, "gated": {"type": "local", "mpirun": str(launcher)}}
    service = Service(tmp_path / "svc", api_pki, overrides={"backends": backends})
    try:
        service.start()
        _full_transfer(service, tmp_path, events, gate, links)
    finally:
        service.stop()
        service.cleanup_jobs()


def _full_transfer(service: Service, tmp_path: Path, events: int, gate: Path, links: int = 1) -> None:
    """alice's transfer, read by alice and by bob (a reader she named), each with their own certificate."""
    with service.client("alice") as api, service.client("bob") as bob:
        view = api.request(synthetic_config(events=events, batch=4),
                           {"ranks": 2, "backend": "gated", "readers": ["bob"]})
        assert view.owner == "alice" and view.url.startswith("tls+tcp://127.0.0.1:") and view.protected
        assert view.state is TransferState.STARTING
        (mine, alice_tls), (theirs, bob_tls) = open_transfer(view.id, api), open_transfer(view.id, bob)
        assert (mine.identity, theirs.identity) == ("alice", "bob") and mine.url == theirs.url == view.url
        outs = [tmp_path / "c0", tmp_path / "c1"]
        with ThreadPoolExecutor(2) as pool:
            pulls = [pool.submit(pull, view.url, out, idle_timeout=60, connections=links, tls=tls)
                     for out, tls in zip(outs, (alice_tls, bob_tls), strict=True)]
            # both consumers are connected before the producers start, so the stream is really shared
            wait_for(lambda: (m := api.status(view.id).metrics) is not None and m.consumers_connected == 2 * links,
                     60, what="two consumers connected")
            gate.touch()
            receivers = [p.result(timeout=120) for p in pulls]
        for receiver in receivers:
            assert receiver.ended and not receiver.ledger.duplicates, receiver.summary()
        ledgers = [ledger_from_json(json.loads((out / LEDGER_FILE).read_text())) for out in outs]
        merged = merge_ledgers(ledgers)
        assert merged.complete(), (merged.describe_gaps(), [r.summary() for r in receivers])
        assert merged.nranks == 2 and merged.expected == {0: 6, 1: 6}
        ids = _pulse_ids(outs[0]) + _pulse_ids(outs[1])
        assert sorted(ids) == list(range(events))  # every event exactly once across both consumers

        _wait_state(service, view.id, TERMINAL)
        final = api.status(view.id)
        assert final.state is TransferState.COMPLETED, (final.reason, final.jobs)
        states = [entry.state.value for entry in final.log]
        assert states[0] == "requested" and states[1] == "starting" and states[-1] == "completed"
        assert final.metrics is not None and final.metrics.consumers_total == 2 * links
        assert final.metrics.messages_sent == final.metrics.messages_received
        final = wait_for(lambda: (v := api.status(view.id)).jobs["buffer"].state in TERMINAL and v, 30,
                         what="buffer exited")
        assert final.jobs["producer"].state == "completed" and final.jobs["buffer"].state == "completed"
        assert [t.id for t in api.list("completed")] == [view.id]
    with sqlite3.connect(Path(service.settings["state_dir"]) / "transfers.sqlite") as db:
        assert db.execute("SELECT count(*) FROM ports").fetchone()[0] == 0  # ports back in the pool


def _blocked_config(events: int = 400) -> dict:
    """Messages of ~1 MiB that fill a 1 MiB buffer at once: producers block until someone pulls."""
    cfg = synthetic_config(events=events, batch=4, compression="none")
    cfg["data_sources"]["tof"] = {"type": "SyntheticWaveformDigitizer", "channels": 16, "samples": 8192}
    return cfg


def test_cancel_mid_stream_stops_producers_and_buffer(service: Service, tmp_path: Path) -> None:
    with service.client("alice") as api:
        view = api.request(_blocked_config(), {"ranks": 2, "max_bytes": 2**20, "idle_timeout": 60})
        _creds, tls = open_transfer(view.id, api)
        wait_for(lambda: (m := api.status(view.id).metrics) is not None and m.messages_received > 0, 90,
                 what="data in the buffer")
        assert api.status(view.id).state is TransferState.STREAMING
        canceled = api.cancel(view.id)
        assert canceled.state is TransferState.CANCELED and canceled.reason == "canceled by alice"
        final = wait_for(lambda: (v := api.status(view.id)) and all(j.state in TERMINAL for j in v.jobs.values())
                         and v, 30, what="jobs stopped")
        assert final.jobs["producer"].state == "canceled" and final.jobs["buffer"].state == "canceled"
        # the buffer is gone: a consumer gets nothing and says the stream is incomplete
        late = pull(view.url, tmp_path / "late", idle_timeout=3, tls=tls)
        assert late.messages == 0 and not late.ended and not late.complete()
        # and the service makes no more credentials for it
        code, err = _finish(_pull(service, view.id, tmp_path / "later", "--wait", "3"))
        assert code == 3 and f"transfer {view.id} is canceled; its stream is over" in err  # 409: exit 3
        with pytest.raises(Exception, match="409"):
            api.cancel(view.id)


def test_producer_crash_fails_the_transfer_with_the_reason(service: Service) -> None:
    cfg = yaml.safe_load((Path(__file__).parents[2] / "examples" / "source-psana1.yaml").read_text())
    with service.client("alice") as api:
        view = api.request(cfg, {"ranks": 1, "idle_timeout": 60})
        state = _wait_state(service, view.id, TERMINAL)
        final = api.status(view.id)
        assert state == "failed", final
        assert final.reason.startswith("producer job failed") and "psana" in final.reason
        wait_for(lambda: api.status(view.id).jobs["buffer"].state in TERMINAL, 30, what="buffer stopped")


def test_restarted_service_keeps_the_record_and_completes(service: Service, tmp_path: Path) -> None:
    events = 24
    with service.client("alice") as api:
        view = api.request(synthetic_config(events=events, batch=4), {"ranks": 2, "idle_timeout": 60})
        wait_for(lambda: api.status(view.id).state is TransferState.DRAINING, 90, what="producers done")
    service.stop(signal.SIGKILL)  # a crash: nobody tracks the transfer now; the buffer keeps the data
    service.start()
    with service.client("alice") as api:
        assert [t.id for t in api.list()] == [view.id]
        code, err = _finish(_pull(service, view.id, tmp_path / "out", "--wait", "60"))
        assert code == 0, err
        assert sorted(_pulse_ids(tmp_path / "out")) == list(range(events))
        _wait_state(service, view.id, TERMINAL)
        final = api.status(view.id)
        assert final.state is TransferState.COMPLETED, final.reason
    assert "resuming tracking of 1 transfers" in service.log_text()
