"""Runs at the beamline fire the run DAGs end to end: real DAQ, Kafka, Airflow, LCLStream-API, Psik-API,
ELog; the consumer job receives the run while it is taken, and the run's record says what was delivered."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from elog.client import ElogError
from elog.records import RunRecord
from tests.e2e.helpers import Site, ledger

START, STOP = "lclstream_on_run_start", "lclstream_on_run_stop"
# A run that fires lclstream_on_run_start lasts a few seconds here: with a run shorter than Airflow's own
# event -> task time (2-4 s on this machine), lclstream_on_run_stop's request for the run's transfer can
# come first; it then streams the closed run from its files and notes it (correct, but not what these
# tests look at).


def test_a_run_taken_by_the_daq_is_streamed_into_the_consumer_job_while_it_runs(e2e_site: Site,
                                                                                experiment: str) -> None:
    before = {t.id for t in e2e_site.transfers()}
    record = e2e_site.take_run(experiment, "--duration", "24", "--rate", "5")  # 120 events
    assert record.event_count == 120

    note = e2e_site.wait_annotation(experiment, record.run, START)
    body = note.body or {}
    assert note.author == "airflow"
    assert body["ok"] is True and body["count_matches"] is True, note.text
    assert body["events_delivered"] == record.event_count == body["run_event_count"]
    assert body["ledger_complete"] is True
    assert body["transfer_state"] == "completed" and body["consumer_state"] == "completed"
    assert body["bytes_delivered"] > 0 and body["duration_s"] > 0
    assert f"consumer job {body['consumer_job_id']} completed: received 120 events" in note.text
    assert "delivered count equals the run's event count (120)" in note.text
    assert e2e_site.wait_dag_run(START, body["dag_run_id"]) == "success"

    # the first data reached the consumer while the run was still taking data
    assert record.stop_time is not None
    first = datetime.fromtimestamp(body["first_message_at"], UTC)
    assert first < record.stop_time, f"first data at {first}, the run stopped at {record.stop_time}"

    # every event exactly once: the consumer's ledger is complete, its files hold each pulse id once
    out_dir = Path(body["out_dir"])
    got = ledger(out_dir)
    assert got["duplicates"] == [] and sum(got["expected"].values()) == len(list(out_dir.glob("*.h5")))
    pulse_ids = sorted(pid for path in out_dir.glob("*.h5") for pid in _pulse_ids(path))
    assert pulse_ids == list(range(120))

    # one transfer for the run; the run_stop DAG followed it (no second consumer) and noted its end
    made = [t for t in e2e_site.transfers() if t.id not in before]
    assert [t.id for t in made] == [body["transfer_id"]]
    stop_note = e2e_site.wait_annotation(experiment, record.run, STOP)
    assert (stop_note.body or {})["transfer_id"] == body["transfer_id"]
    assert (stop_note.body or {}).get("consumer_job_id") is None and (stop_note.body or {})["ok"] is True
    assert e2e_site.wait_dag_run(STOP, (stop_note.body or {})["dag_run_id"]) == "success"


def _pulse_ids(path: Path) -> list[int]:
    import h5py
    import hdf5plugin  # noqa: F401

    with h5py.File(path, "r") as fh:
        return [int(v) for v in fh["/LCLS/pulse_id"][:]]


def test_a_run_published_in_the_lcls_elog_form_fires_the_same_way(e2e_site: Site, experiment: str) -> None:
    record = e2e_site.take_run(experiment, "--events", "24", "--rate", "4", "--format", "elog")  # 6 s
    note = e2e_site.wait_annotation(experiment, record.run, START)
    assert (note.body or {})["ok"] is True, note.text
    assert (note.body or {})["events_delivered"] == 24
    assert e2e_site.wait_dag_run(START, (note.body or {})["dag_run_id"]) == "success"


def test_a_malformed_message_fires_nothing_and_the_next_good_run_still_fires(e2e_site: Site, experiment: str) -> None:
    with e2e_site.api as api:
        runs_before = len(api.dag_runs(START))
    e2e_site.publish_raw(b'{"type": "run_start", "experiment": "x"')  # not even JSON
    e2e_site.publish_raw(b'{"type": "run_begin", "experiment": "x", "run": 1}')  # not a run event
    record = e2e_site.take_run(experiment, "--events", "12", "--rate", "2")  # 6 s
    note = e2e_site.wait_annotation(experiment, record.run, START)
    assert (note.body or {})["ok"] is True, note.text
    with e2e_site.api as api:
        assert len(api.dag_runs(START)) == runs_before + 1  # the good run's; the bad messages made none
    triggerer = (e2e_site.site.airflow.logs / "triggerer.log").read_text()  # type: ignore[union-attr]
    assert "not JSON" in triggerer and "must be one of ['run_start', 'run_stop'], got 'run_begin'" in triggerer


def test_a_duplicated_run_start_makes_one_transfer_and_one_consumer(e2e_site: Site, experiment: str) -> None:
    before = {t.id for t in e2e_site.transfers()}
    daq = e2e_site.start_run(experiment, "--events", "40", "--rate", "8", "--start-delay", "2")
    opened = _wait_open_run(e2e_site, experiment)
    e2e_site.publish(opened.start_event())  # the same run_start again, as a retrying producer would
    record = e2e_site.finish_run(daq)

    note = e2e_site.wait_annotation(experiment, record.run, START)
    assert (note.body or {})["ok"] is True and (note.body or {})["events_delivered"] == 40, note.text
    e2e_site.wait_annotation(experiment, record.run, STOP)
    made = [t for t in e2e_site.transfers() if t.id not in before]
    assert [t.id for t in made] == [(note.body or {})["transfer_id"]]
    starts = [n for n in e2e_site.annotations(experiment, record.run) if (n.body or {}).get("dag_id") == START]
    assert len(starts) == 1  # the repeat's DAG run (if it had its own) followed the transfer quietly


def _wait_open_run(site: Site, experiment: str, timeout: float = 120) -> RunRecord:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with site.elog() as elog:
                return elog.get(experiment, 1)
        except ElogError as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def test_a_run_whose_start_was_never_published_is_streamed_when_it_stops(e2e_site: Site, experiment: str) -> None:
    before = {t.id for t in e2e_site.transfers()}
    record = e2e_site.take_run(experiment, "--events", "30", "--rate", "30", "--no-kafka")  # Airflow hears nothing
    e2e_site.publish(record.stop_event())  # ... until the run stops

    note = e2e_site.wait_annotation(experiment, record.run, STOP)
    body = note.body or {}
    assert body["ok"] is True, note.text
    assert body["consumer_job_id"] and body["events_delivered"] == 30 == body["run_event_count"]
    assert e2e_site.wait_dag_run(STOP, body["dag_run_id"]) == "success"
    assert [t.id for t in e2e_site.transfers() if t.id not in before] == [body["transfer_id"]]
    assert not [n for n in e2e_site.annotations(experiment, record.run) if (n.body or {}).get("dag_id") == START]


def test_runs_starting_together_are_all_streamed(e2e_site: Site) -> None:
    """A burst: every run among the run_starts that reach Airflow together gets its stream (mapped task
    group), and none waits for a later event (the sweep; Airflow 3.3.2's asset queue)."""
    experiments = [f"e2eburst{uuid.uuid4().hex[:6]}" for _ in range(3)]
    daqs = [e2e_site.start_run(name, "--events", "16", "--rate", "3") for name in experiments]  # 5.3 s
    records = [e2e_site.finish_run(daq) for daq in daqs]
    for record in records:
        note = e2e_site.wait_annotation(record.experiment, record.run, START)
        assert (note.body or {})["ok"] is True and (note.body or {})["events_delivered"] == 16, note.text
