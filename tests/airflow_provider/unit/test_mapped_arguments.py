"""Operators inside a mapped task group take the group's arguments and other tasks' XComs as arguments:
such values are known only when the task runs, so they are checked once rendered, not at parse time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from airflow.sdk import DAG, task, task_group

from airflow_provider_lclstream.arguments import ArgumentError, templated
from airflow_provider_lclstream.operators.elog import ElogAnnotateOperator
from airflow_provider_lclstream.operators.psik import PsikJobOperator
from airflow_provider_lclstream.operators.transfer import LCLStreamTransferOperator


def test_mapped_arguments_and_xcoms_are_accepted_and_resolved_at_run_time() -> None:
    with DAG("mapped_args", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)) as dag:
        @task
        def plans() -> list[dict[str, Any]]:
            return []

        @task_group(group_id="stream")
        def stream(run_event: Any, config: Any, options: Any, script: Any) -> None:
            transfer = LCLStreamTransferOperator(task_id="transfer", config=config, options=options,
                                                 run_event=run_event, wait_for="starting")
            job = PsikJobOperator(task_id="consumer", spec={"name": "consumer", "script": script,
                                                            "environment": {"ID": transfer.output["transfer_id"]}})
            ElogAnnotateOperator(task_id="annotate", text=transfer.output["transfer_id"], body=transfer.output,
                                 run_event=run_event)
            transfer >> job

        stream.expand_kwargs(plans())
    consumer = dag.task_dict["stream.consumer"]
    assert templated(consumer.spec) and "stream.transfer" in consumer.upstream_task_ids
    assert templated(dag.task_dict["stream.transfer"].config)


def test_literal_arguments_are_still_checked_at_parse_time() -> None:
    with DAG("literal_args", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)):
        with pytest.raises(ArgumentError, match="spec.script: Field required"):
            PsikJobOperator(task_id="consumer", spec={"name": "consumer"})
        with pytest.raises(ArgumentError, match="spec: a JobSpec or a dict"):
            PsikJobOperator(task_id="consumer2", spec="echo hi")  # type: ignore[arg-type]
