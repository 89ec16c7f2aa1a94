"""``ElogHook`` and ``ElogAnnotateOperator`` against a real ELog service (``lclstream-elog serve``, mutual TLS):
the connection as PEM text or as a certified folder, a templated annotation (text and JSON body, from the
run event and an upstream task's XCom) written under the connection's identity, a run the ELog does not know
failing the task with the service's word; bad arguments refused when the DAG file is parsed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from airflow.sdk import DAG, Connection

from airflow_provider_lclstream.arguments import ArgumentError
from airflow_provider_lclstream.hooks.elog import ElogHook
from airflow_provider_lclstream.hooks.service import endpoint_from
from airflow_provider_lclstream.operators.elog import ElogAnnotateOperator
from elog.records import RunOpen
from tests.airflow_provider.conftest import as_pem_text, dag_file, set_connection, user_tls
from tests.elog.helpers import ElogService
from tests.fixtures.pki import make_pki


@pytest.fixture(scope="module")
def elog_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ElogService]:
    pki = make_pki(tmp_path_factory.mktemp("elog-pki"), server="elog", users=("alice", "daq"))
    service = ElogService(tmp_path_factory.mktemp("elog"), pki)
    service.start()
    with service.client("daq") as daq:
        daq.open_run(RunOpen(instrument="MFX", experiment="mfxp1001121", run=12, detectors=["jungfrau4M"],
                             run_dir="/data/mfxp1001121/r0012"))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def elog_conn(elog_service: ElogService, monkeypatch: pytest.MonkeyPatch) -> str:
    """An ``elog`` connection for alice: her certificate, key and the ELog's CA as PEM text."""
    return set_connection(monkeypatch, "elog_alice", "elog", host=elog_service.url,
                          extra=as_pem_text(user_tls(elog_service.pki, "alice", "elog")))


def test_the_hook_reads_and_annotates_as_the_connection_identity(elog_service: ElogService, elog_conn: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    hook = ElogHook(elog_conn)
    assert hook.get("mfxp1001121", 12).run_dir == "/data/mfxp1001121/r0012"
    note = hook.annotate("mfxp1001121", 12, "hook check", body={"n": 1})
    assert note.author == "alice" and note.body == {"n": 1}
    assert hook.test_connection() == (True, "ELog answered: newest run mfxp1001121/12")
    hook.close()
    folder = set_connection(monkeypatch, "elog_folder", "elog", host="elog",
                            extra={"certified_config": str(elog_service.pki.user_dir("alice"))})
    assert ElogHook(folder).runs(experiment="mfxp1001121")[0].key == "mfxp1001121/12"
    down = set_connection(monkeypatch, "elog_down", "elog", host="https://127.0.0.1:9",
                          extra=as_pem_text(user_tls(elog_service.pki, "alice", "elog")))
    ok, message = ElogHook(down).test_connection()
    assert not ok and message.startswith("ELog not reachable as configured")


ANNOTATE_DAG = """
    from datetime import UTC, datetime
    from airflow.sdk import DAG, task
    from airflow_provider_lclstream.operators.elog import ElogAnnotateOperator

    RUN = {{"type": "run_stop", "instrument": "MFX", "experiment": "mfxp1001121", "run": 12,
           "time": "2026-11-30T01:02:03+00:00", "event_count": 360}}

    with DAG("elog_annotate", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC),
             params={{"where": "S3DF"}}) as dag:
        @task
        def summary():
            return {{"transfer_id": "t-1", "events": 360}}

        ElogAnnotateOperator(task_id="annotate", elog_conn_id={conn!r}, run_event=RUN,
                             text="streamed {{{{ run_event.event_count }}}} events of {{{{ run_event.key }}}} "
                                  "to {{{{ params.where }}}}", body=summary())
        ElogAnnotateOperator(task_id="templated_body", elog_conn_id={conn!r}, experiment="mfxp1001121", run="12",
                             text="dict body", body={{"where": "{{{{ params.where }}}}", "fixed": 1}})
"""


def test_the_operator_posts_a_templated_annotation(airflow_db: Path, elog_service: ElogService, elog_conn: str) -> None:
    run = dag_file("elog_annotate", ANNOTATE_DAG.format(conn=elog_conn)).dag.test()
    assert run.state == "success"
    with elog_service.client("alice") as elog:
        notes = {n.text: n for n in elog.get("mfxp1001121", 12).annotations}
    note = notes["streamed 360 events of mfxp1001121/12 to S3DF"]
    assert note.author == "alice" and note.body == {"transfer_id": "t-1", "events": 360}
    assert notes["dict body"].body == {"where": "S3DF", "fixed": 1}


MISSING_DAG = """
    from datetime import UTC, datetime
    from airflow.sdk import DAG
    from airflow_provider_lclstream.operators.elog import ElogAnnotateOperator

    with DAG("elog_missing", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)) as dag:
        ElogAnnotateOperator(task_id="annotate", elog_conn_id={conn!r}, experiment="mfxp1001121", run=99,
                             text="nobody reads this")
"""


def test_a_run_the_elog_does_not_know_fails_the_task(airflow_db: Path, elog_service: ElogService,
                                                     elog_conn: str) -> None:
    run = dag_file("elog_missing", MISSING_DAG.format(conn=elog_conn)).dag.test()
    assert run.state == "failed"


@pytest.fixture
def dag() -> Iterator[DAG]:
    with DAG("elog_args", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)) as d:
        yield d


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"text": ""}, "text: String should have at least 1 character"),
    ({"text": 42}, "text: a (templated) string"),
    ({"text": "x", "body": [1, 2]}, "body: a dict, JSON text or an XComArg"),
    ({"text": "x" * 20_001}, "text: String should have at most 20000 characters"),
])
def test_bad_arguments_fail_at_parse_time(dag: DAG, kwargs: dict, words: str) -> None:
    with pytest.raises(ArgumentError) as err:
        ElogAnnotateOperator(task_id="annotate", **kwargs)
    assert "ElogAnnotateOperator(task_id='annotate')" in str(err.value) and words in str(err.value)


def test_templated_arguments_are_checked_once_rendered(dag: DAG) -> None:
    op = ElogAnnotateOperator(task_id="annotate", text="{{ params.x }}", body='{"a": "{{ params.y }}"}')
    op.body = '{"a": "1"'
    with pytest.raises(Exception, match="body: not JSON once rendered"):
        op._note()
    op.body, op.text = '{"a": 1}', "rendered"
    assert op._note().body == {"a": 1}


def test_the_pem_key_is_never_in_the_connection_repr(elog_service: ElogService) -> None:
    extra = json.dumps(as_pem_text(user_tls(elog_service.pki, "alice", "elog")))
    endpoint = endpoint_from(Connection(conn_id="e", conn_type="elog", host=elog_service.url, extra=extra))
    assert "PRIVATE KEY" not in repr(endpoint)

