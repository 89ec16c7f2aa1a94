"""Transfer records and the port pool in SQLite (WAL), so a restarted service still knows everything.

Beside each record: the hash of the request body that created it (``request_hash``), so a reused
``Idempotency-Key`` can be told apart from a retry of the same request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from certified.sqlite_store import SQLiteStore
from lclstream_api.models import TransferRecord
from lclstream_api.states import TERMINAL, TransferState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transfers (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    idempotency_key TEXT,
    record TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS transfers_idem ON transfers(owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS transfers_owner ON transfers(owner, state);
CREATE TABLE IF NOT EXISTS ports (
    port INTEGER PRIMARY KEY,
    transfer_id TEXT NOT NULL
);
"""


class DuplicateKey(Exception):
    """Another transfer of this owner already has this idempotency key (made by ``request_hash``)."""

    def __init__(self, existing: TransferRecord, request_hash: str | None) -> None:
        super().__init__(existing.id)
        self.existing = existing
        self.request_hash = request_hash


class PoolExhausted(Exception):
    """No free ports are left in the configured pool."""


class TransferStore(SQLiteStore):
    """Thread-safe access to the transfer table and the port allocations."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(transfers)")}
        if "request_hash" not in columns:  # a database made before request hashes were kept
            self._db.execute("ALTER TABLE transfers ADD COLUMN request_hash TEXT")

    def insert(self, record: TransferRecord, request_hash: str | None = None) -> None:
        """Add a new record; ``DuplicateKey`` when its owner already used its idempotency key."""
        with self._lock:
            if record.idempotency_key is not None:
                found = self.by_idempotency_key(record.owner, record.idempotency_key)
                if found is not None:
                    raise DuplicateKey(*found)
            self._db.execute(
                "INSERT INTO transfers (id, owner, state, created, idempotency_key, record, request_hash) "
                "VALUES (?,?,?,?,?,?,?)",
                (record.id, record.owner, record.state.value, record.created, record.idempotency_key,
                 record.model_dump_json(), request_hash))

    def save(self, record: TransferRecord) -> None:
        with self._lock:
            self._db.execute("UPDATE transfers SET state = ?, record = ? WHERE id = ?",
                             (record.state.value, record.model_dump_json(), record.id))

    def get(self, transfer_id: str) -> TransferRecord | None:
        with self._lock:
            row = self._db.execute("SELECT record FROM transfers WHERE id = ?", (transfer_id,)).fetchone()
        return TransferRecord.model_validate_json(row[0]) if row else None

    def by_idempotency_key(self, owner: str, key: str) -> tuple[TransferRecord, str | None] | None:
        """The owner's transfer made with ``key`` and the hash of its request (None for old records)."""
        with self._lock:
            row = self._db.execute("SELECT record, request_hash FROM transfers WHERE owner = ? AND idempotency_key = ?",
                                   (owner, key)).fetchone()
        return (TransferRecord.model_validate_json(row[0]), row[1]) if row else None

    def list(self, owner: str | None = None, state: TransferState | None = None) -> list[TransferRecord]:
        texts = self._matching("SELECT record FROM transfers",
                               {"owner": owner, "state": state.value if state else None}, "ORDER BY created")
        return [TransferRecord.model_validate_json(text) for text in texts]

    def active(self, owner: str | None = None) -> list[TransferRecord]:
        """Transfers not yet in a terminal state (optionally of one owner)."""
        return [r for r in self.list(owner) if r.state not in TERMINAL]

    # ---- port pool -------------------------------------------------------------------------------
    def allocate_ports(self, transfer_id: str, candidates: Iterable[int], count: int,
                       usable: Callable[[int], bool]) -> list[int]:
        """Reserve ``count`` ports from ``candidates`` that are not reserved and pass ``usable``."""
        with self._lock:
            taken = {r[0] for r in self._db.execute("SELECT port FROM ports")}
            chosen: list[int] = []
            for port in candidates:
                if port in taken or not usable(port):
                    continue
                chosen.append(port)
                if len(chosen) == count:
                    break
            if len(chosen) < count:
                raise PoolExhausted(f"no {count} free ports left in the pool ({len(taken)} in use)")
            self._db.executemany("INSERT INTO ports (port, transfer_id) VALUES (?, ?)",
                                 [(p, transfer_id) for p in chosen])
            return chosen

    def release_ports(self, transfer_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM ports WHERE transfer_id = ?", (transfer_id,))

    def ports_in_use(self) -> dict[int, str]:
        with self._lock:
            return dict(self._db.execute("SELECT port, transfer_id FROM ports").fetchall())
