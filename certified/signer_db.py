"""The signer's record of every certificate it issued, in SQLite."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from pydantic import BaseModel, ConfigDict

SCHEMA = """
CREATE TABLE IF NOT EXISTS signatures (
    serial TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    uid INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    time TEXT NOT NULL,
    not_after TEXT NOT NULL,
    fingerprint TEXT NOT NULL
)
"""


class SignatureRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    serial: str
    name: str
    uid: int
    pid: int
    time: str
    not_after: str
    fingerprint: str


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=10)
    db.execute(SCHEMA)
    return db


def record(path: Path, entry: SignatureRecord) -> None:
    with closing(_connect(path)) as db, db:
        db.execute("INSERT INTO signatures VALUES (:serial, :name, :uid, :pid, :time, :not_after, :fingerprint)",
                   entry.model_dump())


def records(path: Path) -> list[SignatureRecord]:
    if not path.exists():
        return []
    with closing(_connect(path)) as db:
        rows = db.execute("SELECT serial, name, uid, pid, time, not_after, fingerprint FROM signatures "
                          "ORDER BY time").fetchall()
    fields = list(SignatureRecord.model_fields)
    return [SignatureRecord(**dict(zip(fields, row, strict=True))) for row in rows]
