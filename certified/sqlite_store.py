"""The base of the services' record stores: one SQLite file shared by a service's threads and its tools.

The connection is in autocommit mode, guarded by one lock; WAL journaling lets readers go on while one
writer writes, and a busy file is waited for (``timeout``) rather than failed. ``_write()`` is one
``BEGIN IMMEDIATE`` transaction, so a read-then-write (the next run number, a state check) cannot race
with another process using the same file. ``TransferStore`` (LCLStream-API) and ``RunStore`` (ELog)
build on it.

    class JobStore(SQLiteStore):
        def __init__(self, path: Path) -> None:
            super().__init__(path, "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, record TEXT)")
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path


class SQLiteStore:
    def __init__(self, path: Path, schema: str, timeout: float = 30.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=timeout)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(schema)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction that holds the file's write lock from its first statement."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _matching(self, select: str, equal: Mapping[str, object], then: str = "",
                  then_args: Sequence[object] = ()) -> list[str]:
        """The first column of ``select`` (``SELECT column FROM table``) for the rows whose columns equal
        each value of ``equal`` that is not None (None: any), followed by ``then`` (ORDER BY, LIMIT ...).
        Column names come from the code, never from a request."""
        wanted = {column: value for column, value in equal.items() if value is not None}
        where = " WHERE " + " AND ".join(f"{column} = ?" for column in wanted) if wanted else ""
        with self._lock:
            rows = self._db.execute(f"{select}{where} {then}", [*wanted.values(), *then_args]).fetchall()
        return [row[0] for row in rows]
