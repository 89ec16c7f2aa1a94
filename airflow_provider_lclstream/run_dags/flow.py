"""The tasks the run DAGs share: the run assets, planning, streaming one run, and the sweep.

``stream_run`` is the mapped task group that streams one run (``.expand_kwargs`` over the plans of the
DAG run's first task, so every run among the triggering events gets its own copy)::

    transfer ──► consumer ───────────────┐        (consumer: only if this request made the transfer)
        └──────► connected ──► drained ──┼──► cancel_rest (one failed) ──► outcome ──► annotate ──► verdict
                                         └────────────────────────────────┘ (all done)

``transfer`` requests the transfer (idempotency key ``experiment/run``) and returns once its buffer and
producer jobs are submitted; ``consumer`` then runs the consumer job through Psik-API with the transfer's id
and URL in its environment, and waits for it in the triggerer. The consumer starts while the producers
start (``lclstream pull`` waits for the buffer), not after: the two start-ups overlap, which is about
1.5 s of the time from a run's start to the first data at the consumer on a small machine.
``connected`` waits until the transfer streams and a consumer connected to its buffer, ``drained`` until
the transfer completed. When one of them fails, ``cancel_rest`` cancels the transfer and the consumer
job, so nothing waits for a partner that is gone. ``outcome`` asks the services
what happened (``outcome.Outcome``), ``annotate`` posts it to the run in the ELog, ``verdict`` fails the
DAG run when the run was not streamed completely.

Exactly one consumer per transfer: the transfer task pushes ``created`` (LCLStream-API answered 201, not
200 for a known idempotency key), and only that DAG run starts the consumer; another DAG run for the
same run (a duplicated run_start, or ``lclstream_on_run_stop`` for a run whose start fired
``lclstream_on_run_start``) follows the transfer to its end instead.

``sweep`` works around Airflow 3.3.2's asset queue, which can leave run events waiting for a DAG run (see
:func:`sweep`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from airflow.sdk import DAG, Asset, AssetWatcher, BaseHook, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_provider_lclstream.hooks.elog import ElogHook
from airflow_provider_lclstream.hooks.lclstream import LCLStreamHook
from airflow_provider_lclstream.hooks.psik import PsikHook
from airflow_provider_lclstream.hooks.service import endpoint_from
from airflow_provider_lclstream.operators.elog import ElogAnnotateOperator
from airflow_provider_lclstream.operators.psik import PsikJobOperator
from airflow_provider_lclstream.operators.transfer import LCLStreamTransferOperator
from airflow_provider_lclstream.run_dags.outcome import Outcome, consumer_report
from airflow_provider_lclstream.run_dags.plan import TRANSFER_ID_ENV, TRANSFER_URL_ENV, PlanError, plan_run
from airflow_provider_lclstream.run_dags.settings import (
    DagWiring,
    SettingsError,
    StreamSettings,
    read_settings,
)
from airflow_provider_lclstream.run_event_context import as_run_event, run_events
from airflow_provider_lclstream.sensors.buffer import BufferSensor
from airflow_provider_lclstream.triggers.run_events import RunEventTrigger
from elog.client import ElogError
from elog.events import RunEvent
from elog.records import RunState

log = logging.getLogger(__name__)
RUN_STARTS = "lclstream_run_starts"
RUN_STOPS = "lclstream_run_stops"
GROUP = "stream"
WAIT_LIMIT = timedelta(days=2)  # how long the sensors wait; the transfer's own timeouts end it sooner
INLET_READ_S = 60.0


def run_asset(kind: Literal["run_start", "run_stop"], wiring: DagWiring) -> Asset:
    """The asset whose events are the facility's run starts (or stops): a ``RunEventTrigger`` watches Kafka."""
    name = RUN_STARTS if kind == "run_start" else RUN_STOPS
    trigger = RunEventTrigger(kafka_conn_id=wiring.kafka_conn_id, kinds=[kind], instrument=wiring.instrument,
                              experiment=wiring.experiment)
    return Asset(name, watchers=[AssetWatcher(name=f"{name}_kafka", trigger=trigger)])


def read_wiring() -> DagWiring:
    """The parse-time settings; a bad Variable fails the DAG file's import, naming the Variable."""
    return read_settings(DagWiring)


def connection_identity(conn_id: str) -> str | None:
    """The certified identity a service connection presents: its certificate's common name, or the name of
    its identity folder (``certified_config``, else ``$CERTIFIED_CONFIG``)."""
    from cryptography import x509

    from certified import identity
    from certified.caller import strict_common_name
    from certified.material import read_pem

    endpoint = endpoint_from(BaseHook.get_connection(conn_id))
    if endpoint.tls is not None and endpoint.tls.cert:
        return strict_common_name(x509.load_pem_x509_certificate(read_pem(endpoint.tls.cert,
                                                                          f"connection {conn_id}").encode()))
    try:
        return identity.load(endpoint.certified_config).name
    except Exception as exc:  # no identity folder where the connection says: the transfer has no reader then
        log.warning("connection %s: cannot tell its identity (%s)", conn_id, exc)
        return None


def _planner(wiring: DagWiring, dags_folder: Path, settings: StreamSettings, strict: bool) -> Callable[[RunEvent], Any]:
    """Plans runs with ``settings`` for one task; the connections' identities are looked up once, at its
    first run."""
    identity_of = functools.cache(connection_identity)

    def plan(event: RunEvent) -> Any:
        reader = settings.consumer_identity or identity_of(wiring.psik_conn_id)
        return plan_run(event, settings, dags_folder, owner=identity_of(wiring.lclstream_conn_id), reader=reader,
                        strict=strict)
    return plan


def plan_triggering_runs(wiring: DagWiring, dags_folder: Path) -> Any:
    """The first task of the run-triggered DAGs: a plan for every run among the triggering run events.

    A run that cannot be streamed as configured does not stop the others: it is listed (XCom ``refused``)
    for ``report_refused``, which notes it on the run and fails the DAG run.
    """
    @task(task_id="runs", retries=0)
    def runs(**context: Any) -> list[dict[str, Any]]:
        try:
            settings = read_settings(StreamSettings)
        except SettingsError as exc:
            raise AirflowFailException(str(exc)) from None
        planner = _planner(wiring, dags_folder, settings, strict=False)
        plans, refused = [], []
        for payload in run_events(context):
            event = as_run_event(payload)
            try:
                plans.append(planner(event).expand_kwargs())
            except PlanError as exc:
                log.error("run %s will not be streamed: %s", event.key, exc)
                refused.append({"run_event": payload, "reason": str(exc)})
        log.info("%d run(s) to stream: %s", len(plans), ", ".join(p["run_event"]["key"] for p in plans) or "none")
        context["ti"].xcom_push(key="refused", value=refused)
        return plans

    return runs()


def plan_manual_run(wiring: DagWiring, dags_folder: Path) -> Any:
    """The first task of ``lclstream_manual``: the run named in the form, from its ELog record (its files,
    detectors and event count), planned with the form's choices; any problem fails it before anything starts."""
    @task(task_id="runs", retries=0)
    def runs(**context: Any) -> list[dict[str, Any]]:
        params = dict(context["params"])
        overrides = {k: params[k] for k in ("detectors", "serializer", "compression", "batch_size", "ranks")
                     if params.get(k) not in (None, "", [])}
        if (params.get("consumer_command") or "").strip():
            overrides["consumer_command"] = params["consumer_command"].strip()
        try:
            settings = read_settings(StreamSettings, overrides=overrides)
        except SettingsError as exc:
            raise AirflowFailException(str(exc)) from None
        with closing(ElogHook(wiring.elog_conn_id)) as hook:
            try:
                record = hook.get(params["experiment"], int(params["run"]))
            except ElogError as exc:
                if exc.status == 404:
                    raise AirflowFailException(f"run {params['experiment']}/{params['run']} is not in the ELog") from None
                raise
        event = record.stop_event() if record.state == RunState.CLOSED else record.start_event()
        log.info("run %s is %s (%s events); streaming it %s", record.key, record.state.value,
                 record.event_count if record.event_count is not None else "still taking",
                 "from its files" if record.state == RunState.CLOSED else "live")
        try:
            plan = _planner(wiring, dags_folder, settings, strict=True)(event)
        except PlanError as exc:
            raise AirflowFailException(str(exc)) from None
        context["ti"].xcom_push(key="refused", value=[])
        return [plan.expand_kwargs()]

    return runs()


def report_refused(wiring: DagWiring) -> Any:
    """A task that notes on each run the first task could not plan why it is not streamed, then fails the
    DAG run (the other runs of the DAG run stream meanwhile)."""

    @task(task_id="report_refused", retries=0)
    def report(**context: Any) -> None:
        refused = context["ti"].xcom_pull(task_ids="runs", key="refused") or []
        if refused:
            _annotate_refused(wiring, refused)

    return report()


def _annotate_refused(wiring: DagWiring, refused: list[dict[str, Any]]) -> None:
    with closing(ElogHook(wiring.elog_conn_id)) as hook:
        for item in refused:
            event = as_run_event(item["run_event"])
            try:
                hook.annotate(event.experiment, event.run, f"LCLStream: run {event.key} NOT streamed: {item['reason']}",
                              body={"run": event.key, "ok": False, "problem": item["reason"]})
            except Exception as exc:  # the ELog may not know the run; the DAG run fails below anyway
                log.error("could not annotate run %s: %s", event.key, exc)
    raise AirflowFailException("; ".join(f"run {as_run_event(i['run_event']).key}: {i['reason']}" for i in refused))


class RunConsumerOperator(PsikJobOperator):
    """The consumer job of a run's transfer, started only by the DAG run whose request made the transfer.

    :param transfer_created: the transfer task's XCom ``created``; False skips this task (another DAG run
        made the transfer and consumes it).
    """

    template_fields = (*PsikJobOperator.template_fields, "transfer_created")

    def __init__(self, *, transfer_created: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.transfer_created = transfer_created

    def execute(self, context: Any) -> Any:
        if self.transfer_created is False:
            raise AirflowSkipException("an earlier request with the same idempotency key made this transfer; the "
                                       "DAG run that made it runs its consumer")
        return super().execute(context)


def _xcom(context: Any, task: str, key: str) -> Any:
    """The XCom of ``task`` in this copy of the mapped group (the same map index as the caller)."""
    ti = context["ti"]
    return ti.xcom_pull(task_ids=f"{GROUP}.{task}", key=key, map_indexes=ti.map_index)


def _cancel_unless_ended(hook: LCLStreamHook | PsikHook, ident: str, what: str) -> None:
    """Cancel a transfer or job that has not ended yet (a task of its run's stream failed); log either way."""
    with closing(hook):
        try:
            if not hook.status(ident).state.terminal:
                hook.cancel(ident)
                log.warning("%s %s canceled: a task of this run's stream failed", what, ident)
        except Exception as exc:
            log.error("%s %s not canceled: %s", what, ident, exc)


def stream_run(wiring: DagWiring, *, idempotency_key: str | None = None, annotate_followed: bool = True) -> Any:
    """The mapped task group that streams one run (see the module's docstring).

    :param idempotency_key: the transfer's key (template); default the run's ``experiment/run``.
    :param annotate_followed: also annotate a run whose transfer another DAG run made (``lclstream_on_run_stop``
        does: it reports the transfer's end; a duplicated run_start does not).
    """

    @task(task_id="cancel_rest", trigger_rule="one_failed", retries=0)
    def cancel_rest(**context: Any) -> None:
        transfer_id, job_id = _xcom(context, "transfer", "transfer_id"), _xcom(context, "consumer", "job_id")
        if transfer_id:
            _cancel_unless_ended(LCLStreamHook(wiring.lclstream_conn_id), transfer_id, "transfer")
        if job_id:
            _cancel_unless_ended(PsikHook(wiring.psik_conn_id), job_id, "consumer job")

    @task(task_id="outcome", trigger_rule="all_done", multiple_outputs=True, retries=0,
          map_index_template="{{ run_key }}")
    def outcome(run_event: dict[str, Any], out_dir: str, **context: Any) -> dict[str, Any]:
        event = as_run_event(run_event)
        get_current_context()["run_key"] = event.key  # names the mapped task in the UI (map_index_template)
        transfer_id, created = _xcom(context, "transfer", "transfer_id"), _xcom(context, "transfer", "created")
        if created is False and not annotate_followed:
            raise AirflowSkipException(f"run {event.key}: transfer {transfer_id} was made by an earlier DAG run for "
                                       "this run, which consumes and annotates it")
        problems: list[str] = []
        view = job = report = record = None
        if transfer_id is None:
            problems.append("the transfer was not made: LCLStream-API refused or did not answer (see the task "
                            f"{GROUP}.transfer)")
        else:
            with closing(LCLStreamHook(wiring.lclstream_conn_id)) as hook:
                view = _ask(problems, f"transfer {transfer_id}", lambda: hook.status(transfer_id))
        job_id = _xcom(context, "consumer", "job_id")
        if job_id:
            with closing(PsikHook(wiring.psik_conn_id)) as psik:
                job = _ask(problems, f"consumer job {job_id}", lambda: psik.status(job_id))
                stdout = _ask(problems, f"consumer job {job_id}'s output", lambda: psik.logs(job_id, "stdout", tail=200))
                report = consumer_report(stdout or "")
        with closing(ElogHook(wiring.elog_conn_id)) as elog:
            record = _ask(problems, f"run {event.key} in the ELog", lambda: elog.get(event.experiment, event.run))
        result = Outcome.of(event.key, transfer=view, job=job, report=report, run=record,
                            consumer_expected=created is not False, problems=problems,
                            context={"dag_id": context["dag"].dag_id, "dag_run_id": context["run_id"],
                                     "out_dir": out_dir if created is not False else None})
        (log.info if result.ok else log.error)("%s", result.text)
        return result.model_dump(mode="json")

    @task(task_id="verdict", retries=0)
    def verdict(ok: bool, failure: str | None) -> None:
        if not ok:
            raise AirflowFailException(failure or "the run was not streamed completely")

    @task_group(group_id=GROUP)
    def stream(run_event: Any, config: Any, options: Any, consumer_script: Any, consumer_backend: Any,
               consumer_resources: Any, out_dir: Any) -> None:
        keyed = {"map_index_template": "{{ run_event.key }}"}
        transfer = LCLStreamTransferOperator(
            task_id="transfer", config=config, options=options, run_event=run_event, idempotency_key=idempotency_key,
            lclstream_conn_id=wiring.lclstream_conn_id, wait_for="starting", retries=0, **keyed)
        consumer = RunConsumerOperator(
            task_id="consumer", transfer_created=transfer.output["created"], psik_conn_id=wiring.psik_conn_id,
            run_event=run_event, poll_interval=1.0, retries=0, spec={
                "name": "lclstream-consumer", "script": consumer_script, "backend": consumer_backend,
                "resources": consumer_resources,
                "environment": {TRANSFER_ID_ENV: transfer.output["transfer_id"],
                                TRANSFER_URL_ENV: transfer.output["url"]}}, **keyed)
        sensor = {"transfer_id": transfer.output["transfer_id"], "lclstream_conn_id": wiring.lclstream_conn_id,
                  "timeout": WAIT_LIMIT.total_seconds(), "retries": 0}
        connected = BufferSensor(task_id="connected", streaming=True, consumers=1, poke_interval=0.5, **sensor)
        drained = BufferSensor(task_id="drained", drained=True, poke_interval=1.0, **sensor)
        connected >> drained
        cancel = cancel_rest()
        [consumer, connected, drained] >> cancel
        result = outcome(run_event, out_dir)
        [consumer, drained, cancel] >> result
        annotate = ElogAnnotateOperator(task_id="annotate", text=result["text"], body=result["body"],
                                        run_event=run_event, elog_conn_id=wiring.elog_conn_id, retries=2,
                                        retry_delay=timedelta(seconds=5), **keyed)
        annotate >> verdict(result["ok"], result["failure"])

    return stream


def _ask(problems: list[str], what: str, call: Callable[[], Any]) -> Any:
    """The answer of ``call``; a failure is noted in ``problems`` (the outcome says what could not be read)."""
    try:
        return call()
    except Exception as exc:
        problems.append(f"could not read {what}: {exc}")
        return None


def sweep(asset: Asset) -> Any:
    """Bring a DAG run to run events that Airflow 3.3.2's asset queue left waiting.

    Airflow queues one row per (asset, DAG) and gives the DAG run it creates the events up to that row's
    creation time; events recorded while the row existed add no row of their own, so they wait for the
    next event of the asset (seen here with bursts of run events: one DAG run took the first, the rest
    waited). This task looks for run events recorded after this DAG run's window that no DAG run has
    taken; if there are some, it succeeds and its asset event (on the same asset, without a run event in
    it) makes the scheduler queue a DAG run that takes them. Otherwise it is skipped.
    """

    @task(task_id="sweep", inlets=[asset], outlets=[asset], retries=0)
    def sweep_task(**context: Any) -> None:
        since = context["dag_run"].run_after
        waiting: list[str] = []
        deadline = time.monotonic() + INLET_READ_S
        while True:
            try:  # the execution API answers 500 while a DAG run that took one of the events is still queued
                events = list(context["inlet_events"][asset].after(since.isoformat()))
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    log.warning("could not read the events of %s (%s); sweeping anyway", asset.name, exc)
                    events = []
                    waiting = ["(unknown)"]
                    break
                time.sleep(1.0)
        for event in events:
            payload = (event.extra or {}).get("payload")
            if event.timestamp > since and not event.created_dagruns and isinstance(payload, dict) and "key" in payload:
                waiting.append(str(payload["key"]))
        if not waiting:
            raise AirflowSkipException("no run event waits for a DAG run")
        log.warning("%d run event(s) recorded after this DAG run's events wait for a DAG run (%s); this task's "
                    "asset event brings them one", len(waiting), ", ".join(waiting))
        context["outlet_events"][asset].extra = {"sweep": True, "waiting": waiting}

    return sweep_task()


def run_event_dag(dag_id: str, kind: Literal["run_start", "run_stop"], *, doc: str | None, dags_folder: Path,
                  annotate_followed: bool) -> DAG:
    """A DAG fired by the facility's run events of one kind: each run among a DAG run's events is planned and
    streamed by a mapped ``stream`` group, runs that cannot be planned are noted on their record, and ``sweep``
    brings a DAG run to events Airflow's asset queue left waiting."""
    wiring = read_wiring()
    runs = run_asset(kind, wiring)
    with DAG(dag_id, schedule=[runs], doc_md=doc, tags=["lclstream"], max_active_runs=32,
             default_args={"retries": 0}, is_paused_upon_creation=False) as dag:  # live from deployment on
        plans = plan_triggering_runs(wiring, dags_folder)
        stream_run(wiring, annotate_followed=annotate_followed).expand_kwargs(plans)
        plans >> report_refused(wiring)
        sweep(runs)
    return dag
