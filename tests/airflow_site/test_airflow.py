"""The site's real Airflow through its REST API v2: DAGs unpaused, a run with ``conf``, a ``Param`` form
refusing bad fields by name, an asset event creating a DAG run, an external event through an
``AssetWatcher`` starting one, login required, loopback only."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import psutil
import pytest

from airflow_provider_lclstream.local_site import AirflowClient, AirflowError, LocalSite

RUN_TIMEOUT = 300


def test_dags_are_parsed_and_unpaused(airflow_api: AirflowClient) -> None:
    dag = airflow_api.wait_dag("site_check")
    assert dag["is_paused"] is False
    assert airflow_api.import_errors() == []


def test_run_triggered_with_conf_succeeds_and_its_log_shows_the_conf(airflow_api: AirflowClient) -> None:
    conf = {"experiment": "cxil1023", "run": 42, "detector": "jungfrau4M"}
    run = airflow_api.trigger("site_check", conf=conf)
    assert run.conf == conf
    done = airflow_api.wait_dag_run("site_check", run.dag_run_id, timeout=RUN_TIMEOUT)
    assert done.state == "success"
    (task,) = airflow_api.task_instances("site_check", run.dag_run_id)
    assert (task.task_id, task.state) == ("report", "success")
    assert "site_check experiment=cxil1023 run=42 detector=jungfrau4M" in airflow_api.task_log(
        "site_check", run.dag_run_id, "report")


@pytest.mark.parametrize(("conf", "field", "why"), [
    ({"run": 0}, "run", "less than the minimum of 1"),
    ({"detector": "pilatus"}, "detector", "is not one of"),
    ({"experiment": "Bad Name"}, "experiment", "does not match"),
    ({"run": "twelve"}, "run", "is not of type 'integer'"),
])
def test_bad_conf_is_refused_naming_the_field(airflow_api: AirflowClient, conf: dict, field: str,
                                              why: str) -> None:
    before = len(airflow_api.dag_runs("site_check"))
    with pytest.raises(AirflowError) as refused:
        airflow_api.trigger("site_check", conf=conf)
    assert refused.value.status == 400
    assert f"Invalid input for param {field}:" in str(refused.value)
    assert why in str(refused.value)
    assert len(airflow_api.dag_runs("site_check")) == before  # nothing started


def test_asset_event_creates_a_dag_run(airflow_api: AirflowClient) -> None:
    event = airflow_api.create_asset_event("site_check_asset", {"experiment": "mfxl1234", "run": 7})
    runs = airflow_api.wait_runs_created_by(event.id, "site_check_asset", timeout=RUN_TIMEOUT)
    (created,) = runs
    assert created.dag_id == "site_check_on_asset"
    done = airflow_api.wait_dag_run(created.dag_id, created.run_id, timeout=RUN_TIMEOUT)
    assert done.state == "success"
    text = airflow_api.task_log(created.dag_id, created.run_id, "on_event")
    assert "'experiment': 'mfxl1234'" in text and "'run': 7" in text


def test_rest_api_needs_a_login(airflow_site: LocalSite) -> None:
    assert airflow_site.airflow is not None
    url = airflow_site.airflow.url
    assert httpx.get(f"{url}/api/v2/dags", timeout=30).status_code == 401
    with pytest.raises(AirflowError) as refused:
        AirflowClient.login(url, airflow_site.airflow.username, "not-the-password")
    assert refused.value.status == 401


def test_every_component_listens_on_loopback_only(airflow_site: LocalSite) -> None:
    listening = []
    for pid in airflow_site.seen_pids():
        try:
            sockets = psutil.Process(pid).net_connections(kind="inet")
        except psutil.Error:
            continue
        listening += [(pid, s.laddr) for s in sockets if s.status == psutil.CONN_LISTEN]
    assert listening, "the api-server listens somewhere"
    assert all(addr.ip in ("127.0.0.1", "::1") for _pid, addr in listening), listening


def write_event(folder: Path, name: str) -> None:
    """An external event for ``FileEventTrigger``: a file holding the time it was written."""
    tmp = folder / f"{name}.tmp"
    tmp.write_text(repr(time.time()))
    os.replace(tmp, folder / f"{name}.event")


def test_an_external_event_through_an_asset_watcher_starts_a_dag_run(airflow_api: AirflowClient,
                                                                      watch_dir: Path) -> None:
    airflow_api.wait_dag("site_check_watched")
    write_event(watch_dir, "first")
    result = watch_dir / "results" / "first.json"
    deadline = time.monotonic() + RUN_TIMEOUT
    while not result.exists():
        assert time.monotonic() < deadline, f"no task ran for the event within {RUN_TIMEOUT} s"
        time.sleep(0.2)
    assert (watch_dir / "first.taken").exists()  # handed on once
    (run,) = [r for r in airflow_api.dag_runs("site_check_watched")]
    assert run.run_type == "asset_triggered"
    assert airflow_api.wait_dag_run("site_check_watched", run.dag_run_id, timeout=RUN_TIMEOUT).state == "success"
    assert "site_check_watched first first task line" in airflow_api.task_log(
        "site_check_watched", run.dag_run_id, "first_line")
