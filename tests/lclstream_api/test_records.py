"""The state machine, the SQLite store and the port pool, on a real database file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lclstream_api.models import TransferOptions, TransferRecord, config_hash
from lclstream_api.ports import PortPool
from lclstream_api.receive import merge_ledgers
from lclstream_api.settings import PortPoolConfig, SettingsError, load_settings
from lclstream_api.states import TransferState, TransitionError, transition
from lclstream_api.store import DuplicateKey, PoolExhausted, TransferStore
from streamer.config import load_config
from streamer.envelope import Envelope, MessageKind, PayloadFormat, StreamLedger
from tests.fixtures.net import free_port
from tests.lclstream_api.harness import synthetic_config

S = TransferState


def test_transitions_follow_the_machine_and_are_timestamped() -> None:
    log = transition([], S.REQUESTED, "by alice", now=1.0)
    log = transition(log, S.STARTING, now=2.0)
    log = transition(log, S.STREAMING, now=3.0)
    log = transition(log, S.DRAINING, now=4.0)
    log = transition(log, S.COMPLETED, "40 messages", now=5.0)
    assert [(e.state, e.time) for e in log] == [(S.REQUESTED, 1.0), (S.STARTING, 2.0), (S.STREAMING, 3.0),
                                                (S.DRAINING, 4.0), (S.COMPLETED, 5.0)]
    with pytest.raises(TransitionError, match="from completed to streaming"):
        transition(log, S.STREAMING)
    with pytest.raises(TransitionError, match="starts in requested"):
        transition([], S.STARTING)
    failed = transition(log[:3], S.FAILED, "producer job failed")
    assert failed[-1].state is S.FAILED and failed[-1].reason == "producer job failed"
    with pytest.raises(TransitionError, match="from draining to streaming"):
        transition(log[:4], S.STREAMING)


def _record(transfer_id: str, owner: str, key: str | None = None) -> TransferRecord:
    cfg = load_config(synthetic_config())
    now = time.time()
    return TransferRecord(id=transfer_id, owner=owner, created=now, updated=now, state=S.REQUESTED,
                          url="tcp://127.0.0.1:1", recv_url="tcp://127.0.0.1:2", ports=[1, 2],
                          options=TransferOptions(), config=cfg.model_dump(mode="json"),
                          config_hash=config_hash(cfg), idempotency_key=key, cb_secret="s",
                          log=transition([], S.REQUESTED, now=now))


def test_store_persists_across_reopen_and_keys_are_per_owner(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    store = TransferStore(db)
    store.insert(_record("a1", "alice", key="mfx:42"))
    store.insert(_record("b1", "bob", key="mfx:42"))  # same key, other owner: allowed
    with pytest.raises(DuplicateKey) as dup:
        store.insert(_record("a2", "alice", key="mfx:42"))
    assert dup.value.existing.id == "a1"
    rec = store.get("a1")
    assert rec is not None
    rec.log = transition(rec.log, S.STARTING)
    rec.state = S.STARTING
    store.save(rec)
    store.close()

    reopened = TransferStore(db)
    assert reopened.get("a1").state is S.STARTING  # type: ignore[union-attr]
    assert [r.id for r in reopened.list("alice")] == ["a1"]
    assert {r.id for r in reopened.active()} == {"a1", "b1"}
    assert [r.id for r in reopened.list(state=S.STARTING)] == ["a1"]
    assert reopened._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_port_pool_skips_busy_ports_and_returns_ports(tmp_path: Path) -> None:
    import socket

    store = TransferStore(tmp_path / "p.sqlite")
    base = free_port()
    with socket.socket() as busy:
        try:
            busy.bind(("127.0.0.1", base + 1))
        except OSError:
            pytest.skip("neighbouring port taken by another process")
        busy.listen()
        pool = PortPool(PortPoolConfig(start=base, end=base + 3), store, "127.0.0.1")
        ports = pool.allocate("t1", 2)
        assert base + 1 not in ports and len(set(ports)) == 2
        with pytest.raises(PoolExhausted):
            pool.allocate("t2", 2)  # 4 ports, 1 busy, 2 taken
        pool.release("t1")
        assert len(pool.allocate("t2", 2)) == 2


def test_settings_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="callback_listen.*loopback"):
        load_settings({"state_dir": str(tmp_path), "callback_listen": "http://10.1.2.3:9000"})
    with pytest.raises(SettingsError, match="port_pool"):
        load_settings({"state_dir": str(tmp_path), "port_pool": {"start": 3000, "end": 2000}})
    with pytest.raises(SettingsError, match="buffer_backend"):
        load_settings({"state_dir": str(tmp_path), "buffer_backend": "nope"})
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.yaml")


def test_config_hash_ignores_the_handlers_the_service_replaces() -> None:
    a = synthetic_config()
    b = synthetic_config()
    b["data_handlers"] = [{"type": "BinaryFileWritingDataHandler", "write_directory": "/elsewhere"}]
    assert config_hash(load_config(a)) == config_hash(load_config(b))
    assert config_hash(load_config(a)) != config_hash(load_config(synthetic_config(events=41)))


def _env(kind: MessageKind, rank: int, seq: int, count: int = 1) -> Envelope:
    return Envelope(kind, PayloadFormat.HDF5, rank, 2, seq, count)


def test_ledgers_of_consumers_sharing_a_stream_merge() -> None:
    one, two = StreamLedger(), StreamLedger()
    for seq in (0, 2):
        one.record(_env(MessageKind.DATA, 0, seq))
    one.record(_env(MessageKind.END, 1, 2, 2))
    for seq in (1,):
        two.record(_env(MessageKind.DATA, 0, seq))
    two.record(_env(MessageKind.END, 0, 3, 3))
    two.record(_env(MessageKind.DATA, 1, 0))
    assert not one.complete() and not two.complete()
    merged = merge_ledgers([one, two])
    assert merged.missing() == {1: [1]}
    two.record(_env(MessageKind.DATA, 1, 1))
    assert merge_ledgers([one, two]).complete()
    one.record(_env(MessageKind.DATA, 0, 1))  # the same message at both consumers
    assert merge_ledgers([one, two]).duplicates == [(0, 1)]
