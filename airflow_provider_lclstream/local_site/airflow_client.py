"""A small client of Airflow's REST API v2, for the site's tests, demo and bench.

It logs in through the simple auth manager's ``POST /auth/token`` and sends the token as a bearer;
errors become ``AirflowError`` with Airflow's own explanation (``certified.service_client`` is the
base, as for every other service's client). Only what the site needs: trigger a DAG run with ``conf``,
wait for a DAG run (bounded), read a task's log, set a Variable, create an asset event and list the DAG
runs an asset event created.

    with AirflowClient.login("http://127.0.0.1:8080", "admin", password) as api:
        api.wait_dag("lclstream_manual", timeout=120)
        run = api.trigger("lclstream_manual", conf={"experiment": "mfxl1234", "run": 12})
        run = api.wait_dag_run("lclstream_manual", run.dag_run_id, timeout=300)
        print(run.state, api.task_log("lclstream_manual", run.dag_run_id, "stream"))
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from certified.service_client import ServiceClient, ServiceError

FINISHED = frozenset({"success", "failed"})
# keys every structured task-log line repeats; the text form leaves them out
_CONTEXT_KEYS = frozenset({"event", "timestamp", "level", "logger", "ti_id", "dag_id", "run_id", "task_id",
                           "map_index", "try_number", "filename", "lineno"})


class AirflowError(ServiceError):
    service = "airflow"


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class DagRun(_Loose):
    dag_id: str
    dag_run_id: str
    state: str
    run_type: str | None = None
    conf: dict[str, Any] | None = None
    queued_at: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None


class TaskInstance(_Loose):
    task_id: str
    state: str | None = None
    try_number: int = 0
    map_index: int = -1
    start_date: datetime | None = None
    end_date: datetime | None = None


class AssetEventRun(_Loose):
    dag_id: str
    run_id: str
    state: str


class AssetEvent(_Loose):
    id: int
    asset_id: int
    name: str | None = None
    uri: str | None = None
    extra: dict[str, Any] | None = None
    timestamp: datetime
    created_dagruns: list[AssetEventRun] = Field(default_factory=list)


class AirflowClient(ServiceClient):
    """REST API v2 calls; ``http`` must carry the base URL ``.../api/v2`` and the bearer token."""

    error = AirflowError

    @classmethod
    def login(cls, url: str, username: str, password: str, timeout: float = 60.0) -> AirflowClient:
        """Get a token from ``POST {url}/auth/token`` and return a client that sends it."""
        client = cls(http=httpx.Client(base_url=url, timeout=timeout))
        try:
            token = client._json("POST", "/auth/token", json={"username": username, "password": password})
        except BaseException:
            client.close()
            raise
        client.http.base_url = httpx.URL(f"{url}/api/v2/")
        client.http.headers["Authorization"] = f"Bearer {token['access_token']}"
        return client

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # DAGs ------------------------------------------------------------------------------------------

    def import_errors(self) -> list[dict[str, Any]]:
        return self._json("GET", "/importErrors", params={"limit": 100})["import_errors"]

    def wait_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until ``dag_id`` is parsed; fail at once, with Airflow's traceback, on an import error."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._json("GET", f"/dags/{dag_id}")
            except AirflowError as exc:
                if exc.status != 404:
                    raise
            errors = self.import_errors()
            if errors:
                shown = "\n".join(f"{e.get('filename')}: {e.get('stack_trace', '')}" for e in errors)
                raise AirflowError(400, f"DAG {dag_id!r} is not parsed; import errors:\n{shown}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG {dag_id!r} was not parsed within {timeout:g} s")
            time.sleep(0.5)

    # DAG runs --------------------------------------------------------------------------------------

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None,
                note: str | None = None) -> DagRun:
        """``POST /dags/{dag_id}/dagRuns``: a manual run now; a ``conf`` its Params refuse raises (400)."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        if note:
            body["note"] = note
        return DagRun.model_validate(self._json("POST", f"/dags/{dag_id}/dagRuns", json=body))

    def dag_run(self, dag_id: str, run_id: str) -> DagRun:
        return DagRun.model_validate(self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def dag_runs(self, dag_id: str, limit: int = 100) -> list[DagRun]:
        data = self._json("GET", f"/dags/{dag_id}/dagRuns", params={"limit": limit, "order_by": "-run_after"})
        return [DagRun.model_validate(r) for r in data["dag_runs"]]

    def wait_dag_run(self, dag_id: str, run_id: str, timeout: float = 300.0,
                     states: frozenset[str] = FINISHED, interval: float = 0.5) -> DagRun:
        """Poll the run until its state is one of ``states`` (success or failed); TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.dag_run(dag_id, run_id)
            if run.state in states:
                return run
            if time.monotonic() > deadline:
                tasks = ", ".join(f"{t.task_id}={t.state}" for t in self.task_instances(dag_id, run_id))
                raise TimeoutError(f"DAG run {dag_id}/{run_id} is still {run.state} after {timeout:g} s "
                                   f"(tasks: {tasks or 'none yet'})")
            time.sleep(interval)

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstance]:
        data = self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        return [TaskInstance.model_validate(t) for t in data["task_instances"]]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        """The task's whole log as text, one line per log event."""
        data = self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                          params={"full_content": "true", "map_index": map_index},
                          headers={"Accept": "application/json"})
        return "\n".join(_log_line(item) for item in data.get("content", []))

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        """A task's XCom value; None while it has none."""
        try:
            entry = self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
                               params={"map_index": map_index, "deserialize": "true"})
        except AirflowError as exc:
            if exc.status == 404:
                return None
            raise
        return entry.get("value")

    # variables -------------------------------------------------------------------------------------

    def set_variable(self, key: str, value: Any, description: str | None = None) -> None:
        """Create or replace the Variable ``key``; a dict or list is stored as JSON text."""
        text = value if isinstance(value, str) else json.dumps(value)
        body = {"key": key, "value": text, "description": description}
        try:
            self._request("PATCH", f"/variables/{key}", json=body)
        except AirflowError as exc:
            if exc.status != 404:
                raise
            self._request("POST", "/variables", json=body)

    def variable(self, key: str) -> str | None:
        """The Variable's text, None when there is no such Variable."""
        try:
            return self._json("GET", f"/variables/{key}")["value"]
        except AirflowError as exc:
            if exc.status == 404:
                return None
            raise

    # assets ----------------------------------------------------------------------------------------

    def asset_id(self, name: str) -> int:
        """The id of the asset called ``name`` (it exists once a DAG that uses it is parsed)."""
        for asset in self._json("GET", "/assets", params={"name_pattern": name, "limit": 100})["assets"]:
            if asset["name"] == name:
                return int(asset["id"])
        raise AirflowError(404, f"no asset named {name!r} (is a DAG that uses it parsed?)")

    def create_asset_event(self, name: str, extra: dict[str, Any] | None = None) -> AssetEvent:
        """``POST /assets/events``: an event for the asset called ``name``, as an external system would."""
        body = {"asset_id": self.asset_id(name), "extra": extra or {}}
        return AssetEvent.model_validate(self._json("POST", "/assets/events", json=body))

    def asset_events(self, name: str | None = None, limit: int = 100) -> list[AssetEvent]:
        """Asset events, newest first (of the asset called ``name``), each with the DAG runs it created."""
        params: dict[str, Any] = {"limit": limit, "order_by": "-timestamp"}
        if name is not None:
            params["name_pattern"] = name
        data = self._json("GET", "/assets/events", params=params)
        events = [AssetEvent.model_validate(e) for e in data["asset_events"]]
        return [e for e in events if name is None or e.name == name]

    def runs_created_by(self, event_id: int, name: str | None = None) -> list[AssetEventRun]:
        """The DAG runs that asset event ``event_id`` created (empty while none is), from the newest events."""
        for event in self.asset_events(name):
            if event.id == event_id:
                return event.created_dagruns
        raise AirflowError(404, f"asset event {event_id} is not among the newest events"
                                f"{f' of asset {name!r}' if name else ''}")

    def wait_runs_created_by(self, event_id: int, name: str | None = None, timeout: float = 120.0,
                             interval: float = 0.3) -> list[AssetEventRun]:
        """Wait until asset event ``event_id`` has created a DAG run; the runs it created.

        Airflow 3.3.2 answers ``GET /assets/events`` with 500 while a run an event created is still
        queued (the response model requires the run's ``start_date``, null until it starts); that
        answer is taken as "not yet" here, until ``timeout``.
        """
        deadline = time.monotonic() + timeout
        last = "no DAG run yet"
        while True:
            try:
                runs = self.runs_created_by(event_id, name)
                if runs:
                    return runs
            except AirflowError as exc:
                if exc.status != 500:
                    raise
                last = f"Airflow answers {exc} (a created run not started yet)"
            if time.monotonic() > deadline:
                raise TimeoutError(f"asset event {event_id} created no running DAG run within {timeout:g} s: {last}")
            time.sleep(interval)


def _log_line(item: Any) -> str:
    if isinstance(item, dict):
        text = item.get("event", "")
        extra = {k: v for k, v in item.items() if k not in _CONTEXT_KEYS}
        prefix = " ".join(str(item[k]) for k in ("timestamp", "level") if item.get(k))
        return f"{prefix} {text} {json.dumps(extra) if extra else ''}".strip()
    return str(item)

