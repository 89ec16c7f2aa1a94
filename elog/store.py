"""Run records in SQLite: the one store behind the ELog service and behind the DAQ's local mode.

Runs are keyed by (experiment, run); a run's record is kept as JSON beside the columns that are queried,
annotations in their own table. WAL journaling and ``BEGIN IMMEDIATE`` for every change, so a service
and command-line tools may share one file, and taking the next run number cannot race. A restarted
service reads everything back.

    store = RunStore(Path("elog.sqlite"))
    record = store.open_run(RunOpen(instrument="MFX", experiment="mfxp1001121"), opened_by="daq")
    store.close_run("mfxp1001121", record.run, RunClose(event_count=3600, files=[...]))
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from certified.sqlite_store import SQLiteStore
from elog.records import Annotation, AnnotationIn, RunClose, RunOpen, RunRecord, RunState, utc_now
from streamer.run_dir import run_dir_for

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    experiment TEXT NOT NULL,
    run INTEGER NOT NULL,
    state TEXT NOT NULL,
    started REAL NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (experiment, run)
);
CREATE TABLE IF NOT EXISTS annotations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment TEXT NOT NULL,
    run INTEGER NOT NULL,
    annotation TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS annotations_run ON annotations(experiment, run);
"""


class RunNotFound(LookupError):
    def __init__(self, experiment: str, run: int) -> None:
        super().__init__(f"no run {run} in experiment {experiment!r}")


class RunConflict(ValueError):
    """The change does not fit the run's state (it exists already, or is closed with other figures)."""


# the HTTP status each store error stands for: the service answers with it, LocalElog raises it
STATUS_OF: dict[type[Exception], int] = {RunNotFound: 404, RunConflict: 409}


class RunStore(SQLiteStore):
    """Thread-safe access to the runs and annotations of one SQLite file."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    def _annotations(self, experiment: str, run: int) -> list[Annotation]:
        rows = self._db.execute("SELECT id, annotation FROM annotations WHERE experiment = ? AND run = ? "
                                "ORDER BY id", (experiment, run)).fetchall()
        return [Annotation.model_validate_json(text).model_copy(update={"id": row_id}) for row_id, text in rows]

    def _record(self, text: str) -> RunRecord:
        record = RunRecord.model_validate_json(text)
        return record.model_copy(update={"annotations": self._annotations(record.experiment, record.run)})

    def _save(self, db: sqlite3.Connection, record: RunRecord) -> None:
        db.execute("UPDATE runs SET state = ?, record = ? WHERE experiment = ? AND run = ?",
                   (record.state.value, record.model_dump_json(exclude={"annotations"}), record.experiment,
                    record.run))

    def get(self, experiment: str, run: int) -> RunRecord:
        with self._lock:
            row = self._db.execute("SELECT record FROM runs WHERE experiment = ? AND run = ?",
                                   (experiment, run)).fetchone()
            if row is None:
                raise RunNotFound(experiment, run)
            return self._record(row[0])

    def list(self, experiment: str | None = None, state: RunState | None = None,
             limit: int = 1000) -> list[RunRecord]:
        """Runs, the last opened first (optionally of one experiment, in one state)."""
        with self._lock:  # the records and their annotations as of one moment
            texts = self._matching("SELECT record FROM runs", {"experiment": experiment,
                                                                "state": state.value if state else None},
                                   "ORDER BY rowid DESC LIMIT ?", [limit])
            return [self._record(text) for text in texts]

    @staticmethod
    def _exists(db: sqlite3.Connection, experiment: str, run: int) -> bool:
        return db.execute("SELECT 1 FROM runs WHERE experiment = ? AND run = ?", (experiment, run)).fetchone() is not None

    def open_run(self, request: RunOpen, opened_by: str) -> RunRecord:
        with self._write() as db:
            run = request.run
            if run is None:
                (last,) = db.execute("SELECT MAX(run) FROM runs WHERE experiment = ?",
                                     (request.experiment,)).fetchone()
                run = 1 if last is None else last + 1
            elif self._exists(db, request.experiment, run):
                raise RunConflict(f"run {run} of experiment {request.experiment!r} exists already")
            run_dir = request.run_dir
            if request.data_root is not None:
                run_dir = str(run_dir_for(request.data_root, request.experiment, run))
            record = RunRecord(instrument=request.instrument, experiment=request.experiment, run=run,
                               state=RunState.OPEN, start_time=request.start_time or utc_now(),
                               params=request.params, detectors=request.detectors, run_dir=run_dir,
                               opened_by=opened_by)
            db.execute("INSERT INTO runs (experiment, run, state, started, record) VALUES (?, ?, ?, ?, ?)",
                       (record.experiment, record.run, record.state.value, record.start_time.timestamp(),
                        record.model_dump_json(exclude={"annotations"})))
        return record

    def close_run(self, experiment: str, run: int, request: RunClose) -> RunRecord:
        """Close an open run. Closing a closed run again with the same figures returns it unchanged
        (a DAQ may retry); with other figures it is a conflict."""
        with self._write() as db:
            record = self.get(experiment, run)
            if record.state == RunState.CLOSED:
                if record.event_count == request.event_count and record.files == request.files:
                    return record
                raise RunConflict(f"run {run} of experiment {experiment!r} is closed already, with "
                                  f"{record.event_count} events in {len(record.files)} files")
            stop = request.stop_time or utc_now()
            if stop < record.start_time:
                raise RunConflict(f"stop_time {stop.isoformat()} is before the run's start "
                                  f"{record.start_time.isoformat()}")
            record = record.model_copy(update={"state": RunState.CLOSED, "stop_time": stop,
                                               "event_count": request.event_count, "files": request.files})
            self._save(db, record)
        return record

    def annotate(self, experiment: str, run: int, note: AnnotationIn, author: str) -> Annotation:
        with self._write() as db:
            if not self._exists(db, experiment, run):
                raise RunNotFound(experiment, run)
            annotation = Annotation(id=1, time=utc_now(), author=author, **note.model_dump())
            cursor = db.execute("INSERT INTO annotations (experiment, run, annotation) VALUES (?, ?, ?)",
                                (experiment, run, annotation.model_dump_json()))
        return annotation.model_copy(update={"id": cursor.lastrowid})
